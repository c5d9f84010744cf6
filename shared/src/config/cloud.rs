//! The Microsoft clouds and the base URLs of the services we call in each, and which endpoints a
//! tenant is reached at (its own cloud's, or one fixed set: an emulator, or overrides).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use url::Url;

use super::{ConfigError, Env};
use crate::domain::SiemRegion;

/// A Microsoft cloud (national cloud / US Government offering).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cloud {
    /// Worldwide commercial cloud.
    #[default]
    Commercial,
    /// US Government Community Cloud (commercial identity, `.us` Defender APIs).
    Gcc,
    /// US Government Community Cloud High.
    GccHigh,
    /// US Department of Defense.
    Dod,
}

impl Cloud {
    /// Every cloud, in declaration order.
    pub const ALL: [Cloud; 4] = [Cloud::Commercial, Cloud::Gcc, Cloud::GccHigh, Cloud::Dod];

    /// The configuration spelling: `commercial`, `gcc`, `gcc-high` or `dod`.
    pub fn as_str(self) -> &'static str {
        match self {
            Cloud::Commercial => "commercial",
            Cloud::Gcc => "gcc",
            Cloud::GccHigh => "gcc-high",
            Cloud::Dod => "dod",
        }
    }
}

impl fmt::Display for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no known [`Cloud`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown cloud; expected one of commercial, gcc, gcc-high, dod")]
pub struct UnknownCloud;

impl FromStr for Cloud {
    type Err = UnknownCloud;

    /// Parses `commercial`, `gcc`, `gcc-high` or `dod`, ignoring ASCII case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Cloud::ALL
            .into_iter()
            .find(|cloud| cloud.as_str().eq_ignore_ascii_case(s))
            .ok_or(UnknownCloud)
    }
}

/// Base URLs of the Microsoft services we call, for one cloud (or pointed at an emulator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudEndpoints {
    /// Entra ID authority host, e.g. `https://login.microsoftonline.com`.
    pub authority: Url,
    /// Microsoft Graph, e.g. `https://graph.microsoft.com`.
    pub graph: Url,
    /// Defender for Endpoint API, e.g. `https://api.security.microsoft.com`.
    pub mde: Url,
    /// Legacy SIEM API, one exporter per region (`wdatp-alertexporter-{eu,us,uk}`).
    pub siem: SiemEndpoint,
}

/// The legacy SIEM API's base URL in each region (reference §1.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiemEndpoint {
    eu: Url,
    us: Url,
    uk: Url,
}

impl SiemEndpoint {
    /// The placeholder a template names the region with (`eu`, `us`, `uk`).
    pub const PLACEHOLDER: &'static str = "{region}";

    /// The endpoints a template gives: `https://wdatp-alertexporter-{region}.windows.com`, or
    /// one URL for every region when it has no placeholder. Each must be an `http`/`https` URL.
    pub fn from_template(template: &str) -> Result<Self, String> {
        let at = |r: SiemRegion| {
            let s = template.replace(Self::PLACEHOLDER, r.as_str());
            match Url::parse(&s) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(u),
                Ok(u) => Err(format!("scheme `{}` is not http or https", u.scheme())),
                Err(e) => Err(format!("not a URL: {e}")),
            }
        };
        Ok(SiemEndpoint {
            eu: at(SiemRegion::Eu)?,
            us: at(SiemRegion::Us)?,
            uk: at(SiemRegion::Uk)?,
        })
    }

    /// One URL for every region (an emulator that routes by tenant).
    pub fn fixed(url: Url) -> Self {
        SiemEndpoint {
            eu: url.clone(),
            us: url.clone(),
            uk: url,
        }
    }

    /// The exporter of `region`.
    pub fn for_region(&self, region: SiemRegion) -> &Url {
        match region {
            SiemRegion::Eu => &self.eu,
            SiemRegion::Us => &self.us,
            SiemRegion::Uk => &self.uk,
        }
    }
}

impl CloudEndpoints {
    /// Cloud selector; default `commercial`.
    pub const CLOUD_VAR: &'static str = "MSSP_CLOUD";
    /// Overrides [`CloudEndpoints::authority`].
    pub const AUTHORITY_VAR: &'static str = "MSSP_AUTHORITY_URL";
    /// Overrides [`CloudEndpoints::graph`].
    pub const GRAPH_VAR: &'static str = "MSSP_GRAPH_URL";
    /// Overrides [`CloudEndpoints::mde`].
    pub const MDE_VAR: &'static str = "MSSP_MDE_URL";
    /// Overrides [`CloudEndpoints::siem`]; `{region}` in it stands for `eu`, `us` or `uk`.
    pub const SIEM_VAR: &'static str = "MSSP_SIEM_URL";

    /// Microsoft's documented base URLs for `cloud` (see `reference/microsoft-apis.md`: MDE
    /// US Government endpoints and the SIEM API host table).
    pub fn for_cloud(cloud: Cloud) -> Self {
        let (authority, graph, mde, siem) = match cloud {
            Cloud::Commercial => (
                "https://login.microsoftonline.com",
                "https://graph.microsoft.com",
                "https://api.security.microsoft.com",
                "https://wdatp-alertexporter-{region}.windows.com",
            ),
            Cloud::Gcc => (
                "https://login.microsoftonline.com",
                "https://graph.microsoft.com",
                "https://api-gcc.securitycenter.microsoft.us",
                "https://wdatp-alertexporter-us.gcc.securitycenter.windows.us",
            ),
            Cloud::GccHigh => (
                "https://login.microsoftonline.us",
                "https://graph.microsoft.us",
                "https://api-gov.securitycenter.microsoft.us",
                "https://wdatp-alertexporter-us.securitycenter.windows.us",
            ),
            Cloud::Dod => (
                "https://login.microsoftonline.us",
                "https://dod-graph.microsoft.us",
                "https://api-gov.securitycenter.microsoft.us",
                "https://wdatp-alertexporter-us.securitycenter.windows.us",
            ),
        };
        Self {
            authority: known_url(authority),
            graph: known_url(graph),
            mde: known_url(mde),
            siem: SiemEndpoint::from_template(siem)
                .expect("built-in endpoint URL literal is valid"),
        }
    }

    /// Endpoints for the cloud named by `MSSP_CLOUD` (default commercial), each overridden by
    /// `MSSP_AUTHORITY_URL`, `MSSP_GRAPH_URL`, `MSSP_MDE_URL` or `MSSP_SIEM_URL` when set.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let cloud = env.parse_or(Self::CLOUD_VAR, Cloud::default())?;
        let mut endpoints = Self::for_cloud(cloud);
        for (var, slot) in [
            (Self::AUTHORITY_VAR, &mut endpoints.authority),
            (Self::GRAPH_VAR, &mut endpoints.graph),
            (Self::MDE_VAR, &mut endpoints.mde),
        ] {
            if let Some(url) = env.optional_url(var)? {
                *slot = url;
            }
        }
        if let Some(template) = env.optional(Self::SIEM_VAR) {
            endpoints.siem = SiemEndpoint::from_template(&template)
                .map_err(|why| ConfigError::invalid(Self::SIEM_VAR, &template, why))?;
        }
        Ok(endpoints)
    }
}

/// Which Microsoft endpoints a tenant is reached at.
#[derive(Debug, Clone)]
pub enum Endpoints {
    /// Microsoft's real endpoints of each tenant's own cloud.
    PerCloud,
    /// One set for every tenant (an emulator, or a single sovereign cloud with overrides).
    Fixed(Box<CloudEndpoints>),
}

impl Endpoints {
    /// The endpoints for a tenant in `cloud`.
    pub fn for_cloud(&self, cloud: Cloud) -> CloudEndpoints {
        match self {
            Endpoints::PerCloud => CloudEndpoints::for_cloud(cloud),
            Endpoints::Fixed(e) => (**e).clone(),
        }
    }
}

/// Parses one of the literal URLs above; the `for_cloud_*` tests cover every one of them.
fn known_url(literal: &'static str) -> Url {
    Url::parse(literal).expect("built-in endpoint URL literal is valid")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::env;

    #[test]
    fn cloud_parses_its_config_spelling() {
        for cloud in Cloud::ALL {
            assert_eq!(cloud.as_str().parse::<Cloud>().unwrap(), cloud);
            assert_eq!(cloud.to_string(), cloud.as_str());
            let json = serde_json::to_string(&cloud).unwrap();
            assert_eq!(json, format!("\"{}\"", cloud.as_str()));
        }
        assert_eq!("GCC-High".parse::<Cloud>().unwrap(), Cloud::GccHigh);
        assert_eq!("gcc_high".parse::<Cloud>(), Err(UnknownCloud));
    }

    #[test]
    fn for_cloud_commercial_uses_the_public_hosts() {
        let e = CloudEndpoints::for_cloud(Cloud::Commercial);
        assert_eq!(e.authority.as_str(), "https://login.microsoftonline.com/");
        assert_eq!(e.graph.as_str(), "https://graph.microsoft.com/");
        assert_eq!(e.mde.as_str(), "https://api.security.microsoft.com/");
        for (region, host) in [
            (
                SiemRegion::Eu,
                "https://wdatp-alertexporter-eu.windows.com/",
            ),
            (
                SiemRegion::Us,
                "https://wdatp-alertexporter-us.windows.com/",
            ),
            (
                SiemRegion::Uk,
                "https://wdatp-alertexporter-uk.windows.com/",
            ),
        ] {
            assert_eq!(e.siem.for_region(region).as_str(), host);
        }
    }

    #[test]
    fn for_cloud_gcc_uses_commercial_identity_and_gcc_defender_hosts() {
        let e = CloudEndpoints::for_cloud(Cloud::Gcc);
        assert_eq!(e.authority.as_str(), "https://login.microsoftonline.com/");
        assert_eq!(e.graph.as_str(), "https://graph.microsoft.com/");
        assert_eq!(
            e.mde.as_str(),
            "https://api-gcc.securitycenter.microsoft.us/"
        );
        for region in SiemRegion::ALL {
            assert_eq!(
                e.siem.for_region(region).as_str(),
                "https://wdatp-alertexporter-us.gcc.securitycenter.windows.us/"
            );
        }
    }

    #[test]
    fn for_cloud_gcc_high_and_dod_use_us_government_hosts() {
        let high = CloudEndpoints::for_cloud(Cloud::GccHigh);
        let dod = CloudEndpoints::for_cloud(Cloud::Dod);
        for e in [&high, &dod] {
            assert_eq!(e.authority.as_str(), "https://login.microsoftonline.us/");
            assert_eq!(
                e.mde.as_str(),
                "https://api-gov.securitycenter.microsoft.us/"
            );
            assert_eq!(
                e.siem.for_region(SiemRegion::Eu).as_str(),
                "https://wdatp-alertexporter-us.securitycenter.windows.us/"
            );
        }
        assert_eq!(high.graph.as_str(), "https://graph.microsoft.us/");
        assert_eq!(dod.graph.as_str(), "https://dod-graph.microsoft.us/");
    }

    #[test]
    fn from_env_defaults_to_commercial() {
        assert_eq!(
            CloudEndpoints::from_env(&env([])).unwrap(),
            CloudEndpoints::for_cloud(Cloud::Commercial)
        );
    }

    #[test]
    fn from_env_selects_the_cloud() {
        let e = CloudEndpoints::from_env(&env([("MSSP_CLOUD", "dod")])).unwrap();
        assert_eq!(e, CloudEndpoints::for_cloud(Cloud::Dod));
    }

    #[test]
    fn from_env_rejects_an_unknown_cloud_by_name() {
        let err = CloudEndpoints::from_env(&env([("MSSP_CLOUD", "mars")])).unwrap_err();
        assert_eq!(err.var(), "MSSP_CLOUD");
        assert!(err.to_string().contains("gcc-high"), "lists the choices");
    }

    #[test]
    fn from_env_overrides_each_url() {
        let e = CloudEndpoints::from_env(&env([
            ("MSSP_CLOUD", "gcc-high"),
            ("MSSP_AUTHORITY_URL", "http://127.0.0.1:1/login"),
            ("MSSP_GRAPH_URL", "http://127.0.0.1:2"),
            ("MSSP_MDE_URL", "http://127.0.0.1:3"),
            ("MSSP_SIEM_URL", "http://127.0.0.1:4"),
        ]))
        .unwrap();
        assert_eq!(e.authority.as_str(), "http://127.0.0.1:1/login");
        assert_eq!(e.graph.as_str(), "http://127.0.0.1:2/");
        assert_eq!(e.mde.as_str(), "http://127.0.0.1:3/");
        assert_eq!(
            e.siem.for_region(SiemRegion::Uk).as_str(),
            "http://127.0.0.1:4/"
        );
        let per_region = CloudEndpoints::from_env(&env([(
            "MSSP_SIEM_URL",
            "http://127.0.0.1:4/siem-{region}",
        )]))
        .unwrap();
        assert_eq!(
            per_region.siem.for_region(SiemRegion::Uk).as_str(),
            "http://127.0.0.1:4/siem-uk"
        );
    }

    #[test]
    fn from_env_keeps_cloud_defaults_for_unset_overrides() {
        let e = CloudEndpoints::from_env(&env([
            ("MSSP_CLOUD", "gcc"),
            ("MSSP_MDE_URL", "http://127.0.0.1:3"),
        ]))
        .unwrap();
        let gcc = CloudEndpoints::for_cloud(Cloud::Gcc);
        assert_eq!(e.mde.as_str(), "http://127.0.0.1:3/");
        assert_eq!(
            (e.authority, e.graph, e.siem),
            (gcc.authority, gcc.graph, gcc.siem)
        );
    }

    #[test]
    fn from_env_rejects_a_bad_override_by_name() {
        for bad in ["nope", "ftp://127.0.0.1/{region}"] {
            let err = CloudEndpoints::from_env(&env([("MSSP_SIEM_URL", bad)])).unwrap_err();
            assert_eq!(err.var(), "MSSP_SIEM_URL");
        }
    }
}
