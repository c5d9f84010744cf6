# Inputs of the mssp-alerts module. Every optional function setting defaults to null, which
# leaves the matching environment variable unset so the function's own default applies
# (shared/src/wiring.rs documents each variable and its default).

# --- naming -------------------------------------------------------------------------------------

variable "name" {
  description = "Name prefix of every resource (functions are \"{name}-{function}\", e.g. mssp-alerts-alert-fetcher)."
  type        = string
  default     = "mssp-alerts"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "name: 3-32 lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "secrets_prefix" {
  description = "Secrets Manager name prefix: the app secret is \"{prefix}/app\", tenant tokens \"{prefix}/tenants/{tenant_id}\". Null: the name."
  type        = string
  default     = null

  validation {
    condition     = var.secrets_prefix == null || can(regex("^[A-Za-z0-9_+=.@-]+(/[A-Za-z0-9_+=.@-]+)*$", var.secrets_prefix))
    error_message = "secrets_prefix: Secrets Manager name characters, segments separated by single slashes, no leading or trailing slash."
  }
}

variable "alerts_bucket_name" {
  description = "Name of the alerts bucket. Null: \"{name}-alerts-{account id}-{region}\"."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

# --- functions: packages and settings -----------------------------------------------------------

variable "architecture" {
  description = "Instruction set of the function packages: arm64 (cargo lambda build --arm64) or x86_64 (--x86-64)."
  type        = string
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.architecture)
    error_message = "architecture: arm64 or x86_64."
  }
}

variable "functions" {
  description = <<-EOT
    Each function's package and settings, by function name (consent-callback, token-refresh,
    alert-fetcher, and ocsf-exporter when security_lake is set; every one must be given): `package`, the path of its bootstrap.zip built by
    `cargo lambda build --output-format zip`; optional `memory_size` (MB), `timeout` (seconds)
    and `reserved_concurrency`. Settings left null keep the defaults of functions.tf
    (local.function_settings): memory 256/256/512 MB, timeouts 20/300/300 s, and no reserved
    concurrency — a fresh account's quota is 10 concurrent executions, all of which AWS keeps
    unreserved, so a reservation fails until the quota is raised (Service Quotas, "Concurrent
    executions"); then reserve to guarantee capacity or cap a function (0 stops it).
    consent-callback's timeout stays under API Gateway's 30 s integration limit.
  EOT
  type = map(object({
    package              = string
    memory_size          = optional(number)
    timeout              = optional(number)
    reserved_concurrency = optional(number)
  }))

  validation {
    condition     = toset(keys(var.functions)) == toset(concat(["consent-callback", "token-refresh", "alert-fetcher"], var.security_lake == null ? [] : ["ocsf-exporter"]))
    error_message = "functions: exactly consent-callback, token-refresh and alert-fetcher, and ocsf-exporter when security_lake is set."
  }

  validation {
    condition = alltrue([
      for name, f in var.functions : f.timeout == null || try(f.timeout <= (name == "consent-callback" ? 29 : 900), false)
    ])
    error_message = "functions: consent-callback's timeout at most 29 s (API Gateway waits 30 s), the others' at most 900 s."
  }

  validation {
    condition = alltrue([
      for f in var.functions : f.reserved_concurrency == null || try(f.reserved_concurrency >= 0 && floor(f.reserved_concurrency) == f.reserved_concurrency, false)
    ])
    error_message = "functions: reserved_concurrency is null (none reserved) or a whole number of executions, 0 or more."
  }
}

variable "tracing_mode" {
  description = "X-Ray tracing of the functions: PassThrough or Active (Active adds the X-Ray write permissions)."
  type        = string
  default     = "PassThrough"

  validation {
    condition     = contains(["PassThrough", "Active"], var.tracing_mode)
    error_message = "tracing_mode: PassThrough or Active."
  }
}

# --- function environment -----------------------------------------------------------------------

variable "public_base_url" {
  description = "Public base URL of the consent endpoint when the API is served under a custom domain. Null: the API's own invoke URL."
  type        = string
  default     = null

  validation {
    condition     = var.public_base_url == null || can(regex("^https://[^?#]+[^/?#]$", var.public_base_url))
    error_message = "public_base_url: an https URL without query, fragment or trailing slash."
  }
}

variable "cloud" {
  description = "MSSP_CLOUD: commercial, gcc, gcc-high or dod. Null: commercial."
  type        = string
  default     = null

  validation {
    condition     = var.cloud == null || contains(["commercial", "gcc", "gcc-high", "dod"], coalesce(var.cloud, "commercial"))
    error_message = "cloud: commercial, gcc, gcc-high or dod."
  }
}

variable "siem_region" {
  description = "MSSP_SIEM_REGION: eu, us or uk, the legacy SIEM API exporter region of a tenant that records none. Null: us."
  type        = string
  default     = null

  validation {
    condition     = var.siem_region == null || contains(["eu", "us", "uk"], coalesce(var.siem_region, "us"))
    error_message = "siem_region: eu, us or uk."
  }
}

variable "microsoft_endpoints" {
  description = "Overrides of Microsoft's endpoints (MSSP_AUTHORITY_URL, MSSP_GRAPH_URL, MSSP_MDE_URL, MSSP_SIEM_URL). Setting any fixes one set of endpoints for every tenant. Null fields: per tenant cloud."
  type = object({
    authority = optional(string)
    graph     = optional(string)
    mde       = optional(string)
    siem      = optional(string)
  })
  default = {}
}

variable "refresh_concurrency" {
  description = "MSSP_REFRESH_CONCURRENCY: tenants refreshed at once. Null: the function's default (8)."
  type        = number
  default     = null
}

variable "output_format" {
  description = "MSSP_OUTPUT_FORMAT: what the fetcher writes, raw (alerts/…, records mssp.alert/1), ocsf (ocsf/…, OCSF 1.1.0 Detection Findings) or raw+ocsf. Null: the function's default (raw)."
  type        = string
  default     = null

  validation {
    condition     = var.output_format == null || contains(["raw", "ocsf", "raw+ocsf"], coalesce(var.output_format, "raw"))
    error_message = "output_format: raw, ocsf or raw+ocsf."
  }
}

variable "fetch_concurrency" {
  description = "MSSP_FETCH_CONCURRENCY: tenants one fetcher invocation fetches at once. Null: the function's default (4)."
  type        = number
  default     = null
}

variable "gzip_level" {
  description = "MSSP_GZIP_LEVEL: gzip level of the alert objects, 1 (fastest) to 9 (smallest). Null: the function's default (6)."
  type        = number
  default     = null

  validation {
    condition     = var.gzip_level == null || try(floor(var.gzip_level) == var.gzip_level && var.gzip_level >= 1 && var.gzip_level <= 9, false)
    error_message = "gzip_level: a whole number from 1 to 9, or null."
  }
}

# --- schedules and queue ------------------------------------------------------------------------

variable "fetch_schedule" {
  description = "EventBridge schedule of the fetcher's dispatch (one SQS message per active tenant)."
  type        = string
  default     = "rate(5 minutes)"
}

variable "sweep_schedule" {
  description = "EventBridge schedule of the reconciliation sweep's dispatch (a sweep slice per active tenant; each checks it is due). The sweep finds alert versions that became visible after the regular fetch passed them."
  type        = string
  default     = "rate(6 hours)"
}

variable "refresh_schedule" {
  description = "EventBridge schedule of token-refresh."
  type        = string
  default     = "rate(30 minutes)"
}

variable "fetch_batch_size" {
  description = "Tenants (SQS messages) handed to one fetcher invocation."
  type        = number
  default     = 5
}

variable "fetch_max_concurrency" {
  description = "Most fetcher invocations the SQS event source runs at once (2-1000)."
  type        = number
  default     = 10

  validation {
    condition     = var.fetch_max_concurrency >= 2 && var.fetch_max_concurrency <= 1000
    error_message = "fetch_max_concurrency: 2 to 1000."
  }
}

variable "max_receive_count" {
  description = "Deliveries of a message (a tenant's work item; an alert notification) before it moves to its queue's dead-letter queue."
  type        = number
  default     = 5
}

variable "alert_notifications" {
  description = "An SQS queue (and its dead-letter queue) notified of every alert object the fetcher writes (s3:ObjectCreated:* under alerts/), for the SIEM's S3 input: README, Deploy. Off by default: S3 keeps one notification configuration per bucket, which this takes over."
  type        = bool
  default     = false
}

# --- storage ------------------------------------------------------------------------------------

variable "alerts_transition_days" {
  description = "Days after which alert objects move to alerts_transition_storage_class."
  type        = number
  default     = 30
}

variable "alerts_transition_storage_class" {
  description = "Storage class alert objects move to after alerts_transition_days."
  type        = string
  default     = "STANDARD_IA"
}

variable "noncurrent_version_expiration_days" {
  description = "Days after which overwritten (noncurrent) alert object versions are deleted."
  type        = number
  default     = 30
}

variable "table_deletion_protection" {
  description = "Deletion protection of the DynamoDB table (tenant records, cursors)."
  type        = bool
  default     = true
}

variable "secret_recovery_window_days" {
  description = "Recovery window of the app secret when it is deleted (0: delete at once)."
  type        = number
  default     = 30
}

variable "kms_deletion_window_days" {
  description = "Waiting period before the KMS key is deleted."
  type        = number
  default     = 30
}

# --- API and observability ----------------------------------------------------------------------

variable "api_throttling" {
  description = "Throttling of the consent API's stage: steady requests per second and burst."
  type = object({
    rate_limit  = optional(number, 10)
    burst_limit = optional(number, 20)
  })
  default = {}
}

variable "log_retention_days" {
  description = "Retention of the functions' and the API's log groups."
  type        = number
  default     = 365
}

variable "lag_alarm_seconds" {
  description = "The fetch-lag alarm fires when a tenant's alerts trail by more than this many seconds (the LagSeconds metric's maximum over five minutes). Null: three periods of fetch_schedule (15 minutes for a cron expression)."
  type        = number
  default     = null

  validation {
    condition     = var.lag_alarm_seconds == null || try(var.lag_alarm_seconds > 0, false)
    error_message = "lag_alarm_seconds: a positive number of seconds, or null."
  }
}

variable "metrics_per_tenant" {
  description = "MSSP_METRICS_PER_TENANT: also publish LagSeconds and FetchFailures per tenant (dimension TenantId) — two custom metrics per tenant, $0.20 to $0.60 a tenant-month at list price (about $4,000 a month at 10,000 tenants). Off: per API and for the fleet only; the dashboard's Logs Insights table still shows every tenant."
  type        = bool
  default     = false
}

variable "alarm_email" {
  description = "Email address subscribed to the alarm topic (the subscription must be confirmed). Null: none."
  type        = string
  default     = null
}

# --- Amazon Security Lake ------------------------------------------------------------------------

variable "security_lake" {
  description = <<-EOT
    Export to an Amazon Security Lake custom source (lake.tf): null (the default) deploys no
    exporter. Set it to turn the ocsf-exporter function on (and give its package in
    var.functions): `bucket`, the lake's S3 bucket; `source_name` (default mssp-alerts), the
    custom source, whose files go under `prefix` (default ext/{source_name}); `role_arn` and
    `external_id`, the custom source's provider role the exporter assumes to write (Security
    Lake creates it with the source); `account_id` and `region`, the accountId= and region=
    partitions (default: this account, this region). `create_custom_log_source = true` also
    creates the source (aws_securitylake_custom_log_source; the data lake must be enabled in the
    region), with `crawler_role_arn` for its Glue crawler and `event_class` (default
    DETECTION_FINDING, OCSF class 2004), and then takes role_arn and the location from it.
  EOT
  type = object({
    bucket                   = string
    source_name              = optional(string, "mssp-alerts")
    source_version           = optional(string, "1.0")
    prefix                   = optional(string)
    role_arn                 = optional(string)
    external_id              = optional(string)
    account_id               = optional(string)
    region                   = optional(string)
    create_custom_log_source = optional(bool, false)
    crawler_role_arn         = optional(string)
    event_class              = optional(string, "DETECTION_FINDING")
  })
  default = null

  validation {
    condition     = var.security_lake == null || try(var.security_lake.create_custom_log_source == false || var.security_lake.crawler_role_arn != null, false)
    error_message = "security_lake: create_custom_log_source needs crawler_role_arn (the Glue crawler's role)."
  }
}
