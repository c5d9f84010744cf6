variable "region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "eu-west-1"
}

variable "name" {
  description = "Name prefix of every resource."
  type        = string
  default     = "mssp-alerts"
}

variable "architecture" {
  description = "Instruction set the packages were built for: arm64 (cargo lambda build --arm64) or x86_64 (--x86-64)."
  type        = string
  default     = "arm64"
}

variable "consent_callback_zip" {
  description = "Package of consent-callback; a relative path is relative to the repository root."
  type        = string
  default     = "target/lambda/consent-callback/bootstrap.zip"
}

variable "token_refresh_zip" {
  description = "Package of token-refresh; a relative path is relative to the repository root."
  type        = string
  default     = "target/lambda/token-refresh/bootstrap.zip"
}

variable "alert_fetcher_zip" {
  description = "Package of alert-fetcher; a relative path is relative to the repository root."
  type        = string
  default     = "target/lambda/alert-fetcher/bootstrap.zip"
}

variable "public_base_url" {
  description = "Public base URL of the consent endpoint under a custom domain. Null: the API's invoke URL."
  type        = string
  default     = null
}

variable "cloud" {
  description = "Microsoft cloud whose endpoints fill in unset overrides: commercial, gcc, gcc-high or dod. Null: commercial."
  type        = string
  default     = null
}

variable "siem_region" {
  description = "The legacy SIEM API exporter region (eu, us or uk) of a tenant that records none. Null: us."
  type        = string
  default     = null
}

variable "microsoft_endpoints" {
  description = "Overrides of Microsoft's endpoints: an object of the module's microsoft_endpoints variable (authority, graph, mde, siem), which checks it. Null fields: per tenant cloud."
  type        = any
  default     = {}
}

variable "alert_notifications" {
  description = "An SQS queue notified of every alert object, for the SIEM's S3 input (README, Deploy). Off: no queue, the bucket's notifications stay free."
  type        = bool
  default     = false
}

variable "alarm_email" {
  description = "Email address subscribed to the alarm topic. Null: none."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "ocsf_exporter_zip" {
  description = "Package of ocsf-exporter (used with security_lake), relative to the repository root or absolute."
  type        = string
  default     = "target/lambda/ocsf-exporter/bootstrap.zip"
}

variable "output_format" {
  description = "What the fetcher writes: raw (default), ocsf or raw+ocsf (the module's output_format)."
  type        = string
  default     = null
}

variable "security_lake" {
  description = "Export to an Amazon Security Lake custom source: null (default) for none; an object of the module's security_lake variable (bucket, source_name, role_arn, external_id, …), which checks it."
  type        = any
  default     = null
}
