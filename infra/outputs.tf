output "consent_base_url" {
  description = "Public base URL of the consent endpoint (the API's invoke URL)."
  value       = module.mssp_alerts.consent_base_url
}

output "redirect_uri" {
  description = "Register this redirect URI on the Entra app registration."
  value       = module.mssp_alerts.redirect_uri
}

output "alert_fetcher_name" {
  description = "Name of the alert-fetcher function, for SOC tooling."
  value       = module.mssp_alerts.alert_fetcher_name
}

output "alert_fetcher_arn" {
  description = "ARN of the alert-fetcher function, for SOC tooling."
  value       = module.mssp_alerts.alert_fetcher_arn
}

output "alerts_bucket" {
  description = "The alerts bucket."
  value       = module.mssp_alerts.alerts_bucket
}

output "table" {
  description = "The DynamoDB table."
  value       = module.mssp_alerts.table
}

output "app_secret_arn" {
  description = "ARN of the app secret (write its value with put-secret-value)."
  value       = module.mssp_alerts.app_secret_arn
}

output "queue_url" {
  description = "URL of the per-tenant work queue."
  value       = module.mssp_alerts.queue_url
}

output "alert_notifications_queue_url" {
  description = "URL of the queue notified of every alert object, for the SIEM's S3 input (null unless alert_notifications)."
  value       = module.mssp_alerts.alert_notifications_queue_url
}

output "alert_notifications_queue_arn" {
  description = "ARN of that queue, for the SIEM reader's IAM policy (null unless alert_notifications)."
  value       = module.mssp_alerts.alert_notifications_queue_arn
}

output "secrets_prefix" {
  description = "Secrets Manager name prefix (the CLI's MSSP_SECRETS_PREFIX with --backend aws)."
  value       = module.mssp_alerts.secrets_prefix
}

output "kms_key_arn" {
  description = "The customer managed key (the CLI's MSSP_KMS_KEY_ID with --backend aws)."
  value       = module.mssp_alerts.kms_key_arn
}
