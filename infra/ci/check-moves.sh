#!/usr/bin/env bash
# By hand, not in CI: what upgrading a deployment made with an earlier infra/ to this working
# tree's would do. Applies infra/ci/moto.tf of OLD (a commit, default 418d106) to a fresh moto
# server, plans this working tree's infra/ci/moto.tf against the same state and server, and
# prints every planned action: moves (moved.tf), in-place updates with the attributes they
# change, and any create, delete or replace. As a control, OLD is planned again against its own
# apply: an update it plans too comes from what the emulator reads back (moto returns no
# kms_key_arn for a function, for one), not from the new configuration.
#
#   bash infra/ci/check-moves.sh [OLD] [-var NAME=VALUE ...]
#
# Extra arguments go to the new configuration's plan. Exit status 0 when the plan creates,
# deletes and replaces nothing; 1 otherwise (the plan is kept in the printed work directory).
#
# Needs what scripts/test installs (.venv with moto_server) and Terraform with the AWS provider in
# /opt/tf-plugins. Packages: the three zips under $PACKAGES (default target/lambda) when they
# exist, else placeholder zips; both configurations get the same files, so they change no hash.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OLD=${1:-418d106}
shift || true
WORK=$(mktemp -d)
echo "work directory: $WORK"

export CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1 TF_CLI_CONFIG_FILE="$WORK/terraformrc"
cat > "$TF_CLI_CONFIG_FILE" <<'TFRC'
provider_installation {
  filesystem_mirror {
    path    = "/opt/tf-plugins"
    include = ["registry.terraform.io/*/*"]
  }
  direct {
    exclude = ["registry.terraform.io/*/*"]
  }
}
TFRC
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_EC2_METADATA_DISABLED=true

# The two configurations, as copies: old from git, new from the working tree (uncommitted
# changes included); nothing is written into the repository.
mkdir -p "$WORK/old" "$WORK/new"
git archive "$OLD" infra | tar -x -C "$WORK/old"
cp -a infra "$WORK/new/"
rm -rf "$WORK/new/infra/.terraform" "$WORK/new/infra/ci/.terraform"
echo "old: $(git log -1 --format='%h %s' "$OLD" | cut -c1-90)"
echo "new: the working tree on $(git log -1 --format='%h %s' HEAD | cut -c1-80)"

PACKAGES=${PACKAGES:-$PWD/target/lambda}
FUNCTIONS=(consent-callback token-refresh alert-fetcher)
for f in "${FUNCTIONS[@]}"; do
  if [[ ! -f "$PACKAGES/$f/bootstrap.zip" ]]; then
    PACKAGES="$WORK/packages"
    for g in "${FUNCTIONS[@]}"; do
      mkdir -p "$PACKAGES/$g"
      .venv/bin/python - "$PACKAGES/$g/bootstrap.zip" "$g" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w") as z:
    z.writestr("bootstrap", "#!/bin/sh\n# placeholder package of %s\n" % sys.argv[2])
PY
    done
    break
  fi
done
echo "packages: $PACKAGES"

PORT=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
.venv/bin/moto_server -H 127.0.0.1 -p "$PORT" > "$WORK/moto.log" 2>&1 &
MOTO_PID=$!
trap 'kill "$MOTO_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 60); do
  .venv/bin/python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$PORT/moto-api/', timeout=2)" \
    2> /dev/null && break
  sleep 0.5
done
VARS=(-var "moto_url=http://127.0.0.1:$PORT" -var "emulator_url=http://127.0.0.1:9" -var "packages=$PACKAGES")
STATE="$WORK/terraform.tfstate"

tf() { # tf old|new COMMAND ARGS...: Terraform in that copy of infra/ci, its log in $WORK
  local which=$1 command=$2
  shift 2
  terraform -chdir="$WORK/$which/infra/ci" "$command" -input=false -no-color "$@" \
    > "$WORK/$which-$command.log" 2>&1 || { cat "$WORK/$which-$command.log"; exit 1; }
}

tf old init -backend=false
tf old apply -auto-approve -state="$STATE" "${VARS[@]}"
grep -E '^Apply complete' "$WORK/old-apply.log"

tf old plan -state="$STATE" -out="$WORK/old.tfplan" "${VARS[@]}"
terraform -chdir="$WORK/old/infra/ci" show -json "$WORK/old.tfplan" > "$WORK/old-plan.json"
echo "control, OLD against its own apply: $(grep -E "^Plan:|^No changes" "$WORK/old-plan.log")"

tf new init -backend=false
tf new plan -state="$STATE" -out="$WORK/new.tfplan" "${VARS[@]}" "$@"
terraform -chdir="$WORK/new/infra/ci" show -json "$WORK/new.tfplan" > "$WORK/new-plan.json"
grep -E '^Plan:|^No changes' "$WORK/new-plan.log"

.venv/bin/python - "$WORK/new-plan.json" "$WORK/old-plan.json" <<'PY'
import json, sys
plan, control = (json.load(open(p)) for p in sys.argv[1:])

def as_json(value):
    """A JSON document held in a string attribute (a policy), parsed; anything else as is."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            pass
    return value

def changed(before, after, unknown, path=""):
    """What differs between the state's value and the planned one: attribute paths, down into
    JSON documents, with both values where they are short."""
    before, after = as_json(before), as_json(after)
    if isinstance(before, dict) and isinstance(after, dict) and unknown is not True:
        out = []
        for k in sorted(set(before) | set(after)):
            u = unknown.get(k) if isinstance(unknown, dict) else None
            out += changed(before.get(k), after.get(k), u or {}, f"{path}.{k}" if path else k)
        return out
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after) \
            and unknown is not True:
        out = []
        for i, (b, a) in enumerate(zip(before, after)):
            u = unknown[i] if isinstance(unknown, list) and i < len(unknown) else None
            out += changed(b, a, u or {}, f"{path}[{i}]")
        return out
    if unknown is True:
        return [f"{path} (known after apply)"]
    if before != after:
        values = f" {json.dumps(before)} -> {json.dumps(after)}"
        return [path + (values if len(values) < 160 else "")]
    return []

def updates(plan):
    """Address (with its old address) -> attributes an in-place update changes."""
    out = {}
    for rc in plan.get("resource_changes", []):
        c = rc["change"]
        if c["actions"] == ["update"]:
            attrs = changed(c["before"], c["after"], c.get("after_unknown") or {})
            out[rc["address"]] = attrs or [
                f"{k} (the same JSON, written otherwise)" for k in sorted(c["after"] or {})
                if (c["before"] or {}).get(k) != c["after"][k]
            ]
    return out

renamed = {rc["address"]: rc["previous_address"] for rc in plan.get("resource_changes", [])
           if rc.get("previous_address")}
controlled = updates(control)
moves, own, emulator, others, unchanged = [], [], [], [], 0
for rc in plan.get("resource_changes", []):
    actions = rc["change"]["actions"]
    if rc.get("previous_address"):
        moves.append(f"  {rc['previous_address']}  ->  {rc['address']}")
    if actions == ["no-op"]:
        unchanged += 1
    elif actions != ["update"]:
        others.append(f"  {'/'.join(actions)} {rc['address']}")
for address, attrs in updates(plan).items():
    also = set(controlled.get(renamed.get(address, address), []))
    if also & set(attrs):
        emulator.append(f"  {address}: {'; '.join(a for a in attrs if a in also)}")
    if set(attrs) - also:
        own.append(f"  {address}: {'; '.join(a for a in attrs if a not in also)}")
print(f"moved ({len(moves)}):", *moves, sep="\n")
print(f"updated in place, as OLD plans against its own apply too ({len(emulator)}):", *emulator, sep="\n")
print(f"updated in place by the new configuration ({len(own)}):", *own, sep="\n")
print(f"created, deleted or replaced ({len(others)}):", *others, sep="\n")
print(f"unchanged: {unchanged} resources")
sys.exit(1 if others else 0)
PY
