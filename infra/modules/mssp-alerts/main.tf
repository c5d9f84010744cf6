# mssp-alerts: three Rust Lambda functions pulling Microsoft Defender alerts of many customer
# tenants into an S3 bucket (DESIGN.md §3). Files of this module:
#
#   main.tf       names, ARNs, and each function's environment
#   kms.tf        the customer managed key encrypting everything below, and its policy
#   storage.tf    the app secret, the DynamoDB table, the alerts bucket
#   queue.tf      the per-tenant work queue and its dead-letter queue; the optional queue the
#                 bucket notifies of alert objects (for the SIEM)
#   functions.tf  roles (least privilege), log groups, the functions
#   triggers.tf   schedules, the SQS event source, the consent API
#   alarms.tf     the alarm topic and alarms
#   dashboard.tf  the CloudWatch dashboard of the functions' metrics
#   lake.tf       the optional Amazon Security Lake export (ocsf-exporter, var.security_lake)
#   moved.tf      state addresses of earlier versions

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  partition  = data.aws_partition.current.partition

  secrets_prefix = coalesce(var.secrets_prefix, var.name)
  bucket_name    = coalesce(var.alerts_bucket_name, "${var.name}-alerts-${local.account_id}-${local.region}")

  # Function name by crate name (crate = folder = binary = function, STYLE.md habit 1); the
  # ocsf-exporter only with var.security_lake (lake.tf).
  function_names = { for k, v in {
    consent-callback = "${var.name}-consent-callback"
    token-refresh    = "${var.name}-token-refresh"
    alert-fetcher    = "${var.name}-alert-fetcher"
    ocsf-exporter    = "${var.name}-ocsf-exporter"
  } : k => v if k != "ocsf-exporter" || var.security_lake != null }

  # Tenant secrets are created by the functions at consent time, so only their name prefix is
  # known here. Secrets Manager appends "-" and 6 random characters to every secret's ARN.
  tenant_secrets_arn = "arn:${local.partition}:secretsmanager:${local.region}:${local.account_id}:secret:${local.secrets_prefix}/tenants/*"

  public_base_url = coalesce(var.public_base_url, aws_apigatewayv2_api.consent.api_endpoint)

  # The environment of each function is exactly the variables its Config reads
  # (shared::wiring::ServiceConfig::VARIABLES, and the fetcher's Config): required ones are set
  # always, optional ones only when given. tests/tests/integration/infra_config.rs parses these
  # maps and the functions' `environment` blocks and compares them with the Rust code, so keep
  # them literal maps, `merge(...)` of them, or `{ for k, v in {...} : k => v if v != null }`.
  service_environment = merge(
    {
      MSSP_PUBLIC_BASE_URL = local.public_base_url
      MSSP_SECRETS_PREFIX  = local.secrets_prefix
      MSSP_APP_SECRET_ID   = aws_secretsmanager_secret.app.arn
      MSSP_TABLE           = aws_dynamodb_table.state.name
      MSSP_KMS_KEY_ID      = aws_kms_key.this.arn
      # The functions write their metrics as EMF log lines into this namespace (alarms.tf).
      MSSP_METRICS_NAMESPACE = local.metric_namespace
    },
    { for name, value in {
      MSSP_CLOUD               = var.cloud
      MSSP_AUTHORITY_URL       = var.microsoft_endpoints.authority
      MSSP_GRAPH_URL           = var.microsoft_endpoints.graph
      MSSP_MDE_URL             = var.microsoft_endpoints.mde
      MSSP_SIEM_URL            = var.microsoft_endpoints.siem
      MSSP_SIEM_REGION         = var.siem_region
      MSSP_REFRESH_CONCURRENCY = var.refresh_concurrency == null ? null : tostring(var.refresh_concurrency)
      MSSP_METRICS_PER_TENANT  = var.metrics_per_tenant ? "true" : null
    } : name => value if value != null },
  )

  fetcher_environment = merge(
    {
      MSSP_BUCKET            = aws_s3_bucket.alerts.id
      MSSP_ALERTS_KMS_KEY_ID = aws_kms_key.this.arn
      MSSP_QUEUE_URL         = aws_sqs_queue.work.url
    },
    { for name, value in {
      MSSP_FETCH_CONCURRENCY = var.fetch_concurrency == null ? null : tostring(var.fetch_concurrency)
      MSSP_OUTPUT_FORMAT     = var.output_format
      MSSP_GZIP_LEVEL        = var.gzip_level == null ? null : tostring(var.gzip_level)
    } : name => value if value != null },
  )

  tags = merge({ app = "mssp-alerts" }, var.tags)
}
