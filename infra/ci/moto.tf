# CI only: the module applied against the AWS emulator (moto server) by scripts/test, then run by
# tests/tests/integration/infra_e2e.rs. Credentials come from the environment (AWS_ACCESS_KEY_ID
# and AWS_SECRET_ACCESS_KEY set to moto's dummies by scripts/test); nothing here reaches AWS.
# versions.tf is a link to the root's: CI applies with the provider version production pins.

variable "moto_url" {
  description = "Base URL of the moto server, e.g. http://127.0.0.1:5000."
  type        = string
}

variable "emulator_url" {
  description = "Base URL of the Microsoft emulator the E2E test starts, e.g. http://127.0.0.1:5001."
  type        = string
}

variable "name" {
  description = "Name prefix of every resource."
  type        = string
  default     = "mssp-ci"
}

variable "packages" {
  description = "Directory holding <function>/bootstrap.zip (cargo lambda build --output-format zip)."
  type        = string
}

provider "aws" {
  region                      = "us-east-1"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  s3_use_path_style           = true

  endpoints {
    apigateway     = var.moto_url
    apigatewayv2   = var.moto_url
    cloudwatch     = var.moto_url
    cloudwatchlogs = var.moto_url
    dynamodb       = var.moto_url
    events         = var.moto_url
    iam            = var.moto_url
    kms            = var.moto_url
    lambda         = var.moto_url
    s3             = var.moto_url
    secretsmanager = var.moto_url
    sns            = var.moto_url
    sqs            = var.moto_url
    sts            = var.moto_url
  }
}

module "mssp_alerts" {
  source = "../modules/mssp-alerts"

  name         = var.name
  architecture = "x86_64"
  functions = {
    for name in ["consent-callback", "token-refresh", "alert-fetcher", "ocsf-exporter"] : name => {
      package = "${var.packages}/${name}/bootstrap.zip"
    }
  }

  # Every optional setting is given, so the E2E test sees each variable set from Terraform.
  cloud = "commercial"
  microsoft_endpoints = {
    authority = "${var.emulator_url}/login"
    graph     = "${var.emulator_url}/graph"
    mde       = "${var.emulator_url}/mde"
    siem      = "${var.emulator_url}/siem"
  }
  refresh_concurrency = 4
  fetch_concurrency   = 2
  alert_notifications = true
  output_format       = "raw+ocsf"

  # The Security Lake export, into a stand-in of the lake (moto has no Security Lake): a bucket
  # and the custom source's provider role, as Security Lake would create them.
  security_lake = {
    bucket      = aws_s3_bucket.lake.id
    source_name = "mssp-alerts"
    role_arn    = aws_iam_role.lake_source.arn
    external_id = "mssp-ci-lake"
    account_id  = "123456789012"
  }

  # A CI run applies once into a fresh emulator and is thrown away.
  table_deletion_protection   = false
  secret_recovery_window_days = 0
  kms_deletion_window_days    = 7
  alarm_email                 = "soc@example.com"
}

# --- the Security Lake stand-in ------------------------------------------------------------------

resource "aws_s3_bucket" "lake" {
  #checkov:skip=CKV_AWS_18:CI stand-in for the Security Lake bucket, which Security Lake creates and configures (access logs, versioning, encryption, replication, lifecycle) in a real account.
  #checkov:skip=CKV_AWS_21:CI stand-in for the Security Lake bucket (see CKV_AWS_18).
  #checkov:skip=CKV_AWS_144:CI stand-in for the Security Lake bucket (see CKV_AWS_18).
  #checkov:skip=CKV_AWS_145:CI stand-in for the Security Lake bucket (see CKV_AWS_18).
  #checkov:skip=CKV2_AWS_6:CI stand-in for the Security Lake bucket (see CKV_AWS_18).
  #checkov:skip=CKV2_AWS_61:CI stand-in for the Security Lake bucket (see CKV_AWS_18).
  #checkov:skip=CKV2_AWS_62:CI stand-in for the Security Lake bucket (see CKV_AWS_18).
  bucket        = "${var.name}-security-lake"
  force_destroy = true
}

# The custom source's provider role: the exporter's role may assume it with the external id (in
# AWS, Security Lake's trust policy names the provider's account), and it may write the source's
# prefix only (Security Lake's own role is bounded the same way).
resource "aws_iam_role" "lake_source" {
  name = "${var.name}-lake-custom-source"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { AWS = "arn:aws:iam::123456789012:role/${var.name}-ocsf-exporter" }
      Action    = "sts:AssumeRole"
      Condition = { StringEquals = { "sts:ExternalId" = "mssp-ci-lake" } }
    }]
  })
}

resource "aws_iam_role_policy" "lake_source" {
  name = "write-custom-source"
  role = aws_iam_role.lake_source.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = ["s3:PutObject"]
      Resource = "${aws_s3_bucket.lake.arn}/ext/mssp-alerts/*"
    }]
  })
}

# moto delivers EventBridge events to SQS targets but invokes no Lambda target: a second target
# on the exporter's rule puts the very events moto emits (the bucket's object-created events that
# match the rule's pattern) on a queue, which the end-to-end test hands to the packaged exporter
# (scripts/test removes the Lambda target from the emulator after apply: moto raises on it).
resource "aws_sqs_queue" "lake_events" {
  name                    = "${var.name}-lake-events"
  sqs_managed_sse_enabled = true
}

resource "aws_sqs_queue_policy" "lake_events" {
  queue_url = aws_sqs_queue.lake_events.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "events.amazonaws.com" }
      Action    = "sqs:SendMessage"
      Resource  = aws_sqs_queue.lake_events.arn
    }]
  })
}

resource "aws_cloudwatch_event_target" "lake_events" {
  rule = module.mssp_alerts.ocsf_export_rule_name
  arn  = aws_sqs_queue.lake_events.arn
}

output "outputs" {
  description = "Everything the E2E test needs, in one object."
  value = {
    consent_base_url = module.mssp_alerts.consent_base_url
    function_names   = module.mssp_alerts.function_names
    alerts_bucket    = module.mssp_alerts.alerts_bucket
    table            = module.mssp_alerts.table
    app_secret_arn   = module.mssp_alerts.app_secret_arn
    secrets_prefix   = module.mssp_alerts.secrets_prefix
    queue_url        = module.mssp_alerts.queue_url
    dlq_url          = module.mssp_alerts.dead_letter_queue_url
    kms_key_arn      = module.mssp_alerts.kms_key_arn
    alert_fetcher    = module.mssp_alerts.alert_fetcher_arn
    notifications    = module.mssp_alerts.alert_notifications_queue_url
    lake_bucket      = aws_s3_bucket.lake.id
    lake_role_arn    = aws_iam_role.lake_source.arn
    lake_dlq_url     = module.mssp_alerts.ocsf_export_dead_letter_queue_url
    lake_events_url  = aws_sqs_queue.lake_events.url
    lake_rule        = module.mssp_alerts.ocsf_export_rule_name
  }
}
