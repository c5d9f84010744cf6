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
    for name, path in {
      consent_callback = var.consent_callback_zip
      token_refresh    = var.token_refresh_zip
      alert_fetcher    = var.alert_fetcher_zip
    } : name => startswith(path, "/") ? path : "${local.repository_root}/${path}"
  }
}

module "mssp_alerts" {
  source = "./modules/mssp-alerts"

  name                 = var.name
  architecture         = var.architecture
  consent_callback_zip = local.packages.consent_callback
  token_refresh_zip    = local.packages.token_refresh
  alert_fetcher_zip    = local.packages.alert_fetcher
  public_base_url      = var.public_base_url
  cloud                = var.cloud
  microsoft_endpoints  = var.microsoft_endpoints
  alarm_email          = var.alarm_email
  tags                 = var.tags
}
