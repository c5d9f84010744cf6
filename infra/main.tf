# mssp-alerts deployed into one account and region. Build the packages first (README, "Deploy"):
#   cargo lambda build --release --arm64 --output-format zip
# then `terraform init && terraform apply` here. Every setting of the module is described in
# modules/mssp-alerts/variables.tf; this root passes the common ones.

provider "aws" {
  region = var.region

  default_tags {
    tags = { managed-by = "terraform" }
  }
}

locals {
  repository_root = "${path.root}/.."
  # Relative package paths are relative to the repository root (where cargo writes target/).
  packages = {
    consent-callback = var.consent_callback_zip
    token-refresh    = var.token_refresh_zip
    alert-fetcher    = var.alert_fetcher_zip
    ocsf-exporter    = var.ocsf_exporter_zip
  }
}

module "mssp_alerts" {
  source = "./modules/mssp-alerts"

  name         = var.name
  architecture = var.architecture
  functions = {
    for name, path in local.packages : name => {
      package = startswith(path, "/") ? path : "${local.repository_root}/${path}"
    } if name != "ocsf-exporter" || var.security_lake != null
  }
  public_base_url     = var.public_base_url
  cloud               = var.cloud
  siem_region         = var.siem_region
  microsoft_endpoints = var.microsoft_endpoints
  alert_notifications = var.alert_notifications
  output_format       = var.output_format
  security_lake       = var.security_lake
  alarm_email         = var.alarm_email
  tags                = var.tags
}
