//! What a request asks for: v1 names one resource (`resource=https://graph.windows.net`), v2 a
//! space-separated list of scopes, each `<App ID URI>/<permission>` (`/.default` meaning "what the
//! registration lists"), bare names meaning Microsoft Graph, plus the OpenID Connect scopes.
//! Also what consenting to such a request grants (reference §4.2, §4.7, §4.8).

use std::collections::{BTreeMap, BTreeSet};

use crate::scenario::{Api, PermissionSpec};
use crate::world::App;

/// The OpenID Connect scopes, which name no resource.
const OIDC: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// One resource a request names, as the client wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ResourceScopes {
    /// The API.
    pub api: Api,
    /// The App ID URI as written (echoed in v1 `resource` and v2 `scope`).
    pub uri: String,
    /// Permissions named one by one.
    pub scopes: BTreeSet<String>,
    /// `/.default` (and v1 `resource=`): every permission the registration lists.
    pub default: bool,
}

impl ResourceScopes {
    /// A v1 `resource=`; `None` when it names no API the emulator serves.
    pub fn v1(resource: &str) -> Option<ResourceScopes> {
        Api::from_resource(resource).map(|api| ResourceScopes {
            api,
            uri: resource.to_string(),
            scopes: BTreeSet::new(),
            default: true,
        })
    }
}

/// A parsed v2 `scope` parameter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct ScopeRequest {
    /// Resources in the order first named.
    pub resources: Vec<ResourceScopes>,
    /// OpenID Connect scopes named (lowercase).
    pub oidc: BTreeSet<String>,
}

/// Why a v2 `scope` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ScopeError {
    /// A scope names a resource the emulator does not serve (AADSTS500011).
    UnknownResource(String),
    /// A scope is not `<resource>/<permission>` (AADSTS70011).
    Invalid(String),
}

impl ScopeRequest {
    /// Parses a v2 `scope` value.
    pub fn parse(scope: &str) -> Result<ScopeRequest, ScopeError> {
        let mut req = ScopeRequest::default();
        for token in scope.split_whitespace() {
            let lower = token.to_ascii_lowercase();
            if OIDC.contains(&lower.as_str()) {
                req.oidc.insert(lower);
                continue;
            }
            // A bare permission (`User.Read`) is Microsoft Graph's, as in Entra.
            let (resource, permission) = token
                .rsplit_once('/')
                .unwrap_or((resource_of_bare_scopes(), token));
            if permission.is_empty() || resource.is_empty() {
                return Err(ScopeError::Invalid(token.to_string()));
            }
            let api = Api::from_resource(resource)
                .ok_or_else(|| ScopeError::UnknownResource(resource.to_string()))?;
            let entry = match req.resources.iter().position(|r| r.api == api) {
                Some(i) => &mut req.resources[i],
                None => {
                    req.resources.push(ResourceScopes {
                        api,
                        uri: resource.to_string(),
                        scopes: BTreeSet::new(),
                        default: false,
                    });
                    let last = req.resources.len() - 1;
                    &mut req.resources[last]
                }
            };
            if permission.eq_ignore_ascii_case(".default") {
                entry.default = true;
            } else {
                entry.scopes.insert(permission.to_string());
            }
        }
        Ok(req)
    }

    /// Whether `offline_access` was asked for (v2 issues refresh tokens only then).
    pub fn offline_access(&self) -> bool {
        self.oidc.contains("offline_access")
    }

    /// Whether this is a valid client-credentials scope: one resource, `/.default` only.
    pub fn is_default_only(&self) -> bool {
        self.oidc.is_empty()
            && !self.resources.is_empty()
            && self
                .resources
                .iter()
                .all(|r| r.default && r.scopes.is_empty())
    }
}

fn resource_of_bare_scopes() -> &'static str {
    super::resource_uri(Api::Graph)
}

/// Which resources a consent covers.
#[derive(Debug, Clone, Copy)]
pub(super) enum Ask<'a> {
    /// Everything the registration lists (v1 sign-in without `resource`, v1 admin consent).
    Everything,
    /// These resources only.
    Resources(&'a [ResourceScopes]),
}

/// What accepting a consent request grants: delegated permissions (the named ones, or the
/// registration's for `/.default`), and with `app_roles` the registration's application
/// permissions for the same resources.
pub(super) fn requested(app: &App, ask: Ask<'_>, app_roles: bool) -> PermissionSpec {
    let listed = |m: &BTreeMap<Api, Vec<String>>, api: Api| -> BTreeSet<String> {
        m.get(&api).into_iter().flatten().cloned().collect()
    };
    let mut roles: BTreeMap<Api, BTreeSet<String>> = BTreeMap::new();
    let mut delegated: BTreeMap<Api, BTreeSet<String>> = BTreeMap::new();
    for api in Api::ALL {
        let wanted = match ask {
            Ask::Everything => Some(listed(&app.permissions.delegated, api)),
            Ask::Resources(rs) => rs.iter().find(|r| r.api == api).map(|r| {
                let mut s = r.scopes.clone();
                if r.default {
                    s.extend(listed(&app.permissions.delegated, api));
                }
                s
            }),
        };
        let Some(wanted) = wanted else { continue };
        delegated.entry(api).or_default().extend(wanted);
        if app_roles {
            roles
                .entry(api)
                .or_default()
                .extend(listed(&app.permissions.app_roles, api));
        }
    }
    let keep = |m: BTreeMap<Api, BTreeSet<String>>| {
        m.into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k, v.into_iter().collect()))
            .collect()
    };
    PermissionSpec {
        app_roles: keep(roles),
        delegated: keep(delegated),
    }
}

/// Human-readable lines for the consent page.
pub(super) fn describe(spec: &PermissionSpec) -> Vec<String> {
    let mut lines = Vec::new();
    for (api, roles) in &spec.app_roles {
        for r in roles {
            lines.push(format!(
                "{r} (application permission, {})",
                super::resource_uri(*api)
            ));
        }
    }
    for (api, scopes) in &spec.delegated {
        for s in scopes {
            lines.push(format!(
                "{s} (delegated permission, {})",
                super::resource_uri(*api)
            ));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> App {
        App {
            client_id: "c".into(),
            name: "n".into(),
            secrets: vec![],
            redirect_uris: vec![],
            permissions: PermissionSpec {
                app_roles: BTreeMap::from([
                    (Api::Graph, vec!["SecurityAlert.Read.All".into()]),
                    (Api::Mde, vec!["Alert.Read.All".into()]),
                ]),
                delegated: BTreeMap::from([
                    (Api::Graph, vec!["SecurityAlert.Read.All".into()]),
                    (Api::Siem, vec!["user_impersonation".into()]),
                ]),
            },
            home_tenant: None,
        }
    }

    #[test]
    fn v2_scopes_group_by_resource_and_separate_oidc() {
        let r = ScopeRequest::parse(
            "https://api.securitycenter.microsoft.com/Alert.Read offline_access \
             https://api.security.microsoft.com/.default User.Read openid",
        )
        .expect("valid");
        assert_eq!(r.resources.len(), 2);
        assert_eq!(r.resources[0].api, Api::Mde);
        assert!(r.resources[0].default);
        assert_eq!(
            r.resources[0].scopes,
            BTreeSet::from(["Alert.Read".to_string()])
        );
        assert_eq!(r.resources[1].api, Api::Graph);
        assert!(r.offline_access());
        assert!(!r.is_default_only());
        assert!(
            ScopeRequest::parse("https://graph.microsoft.com/.default")
                .expect("valid")
                .is_default_only()
        );
    }

    #[test]
    fn unknown_resources_and_empty_permissions_are_refused() {
        assert_eq!(
            ScopeRequest::parse("https://example.com/.default"),
            Err(ScopeError::UnknownResource("https://example.com".into()))
        );
        assert_eq!(
            ScopeRequest::parse("https://graph.microsoft.com/"),
            Err(ScopeError::Invalid("https://graph.microsoft.com/".into()))
        );
    }

    #[test]
    fn default_expands_to_the_registration_and_admin_consent_adds_roles() {
        let r = ScopeRequest::parse("https://graph.microsoft.com/.default").expect("valid");
        let user = requested(&app(), Ask::Resources(&r.resources), false);
        assert!(user.app_roles.is_empty());
        assert_eq!(
            user.delegated.get(&Api::Graph),
            Some(&vec!["SecurityAlert.Read.All".to_string()])
        );
        assert!(!user.delegated.contains_key(&Api::Siem));
        let admin = requested(&app(), Ask::Resources(&r.resources), true);
        assert_eq!(admin.app_roles.len(), 1);
        let all = requested(&app(), Ask::Everything, true);
        assert_eq!(all.app_roles.len(), 2);
        assert_eq!(all.delegated.len(), 2);
        assert_eq!(describe(&all).len(), 4);
    }
}
