output "consent_base_url" {
  description = "Public base URL of the consent endpoint: consent links are {url}/consent/start; register {url}/consent/callback as the app's redirect URI in Entra."
  value       = local.public_base_url
}

output "redirect_uri" {
  description = "The redirect URI to register on the Entra app registration."
  value       = "${local.public_base_url}/consent/callback"
}

output "alert_fetcher_name" {
  description = "Name of the alert-fetcher function (SOC tooling invokes it directly)."
  value       = aws_lambda_function.function["alert-fetcher"].function_name
}

output "alert_fetcher_arn" {
  description = "ARN of the alert-fetcher function (grant SOC tooling lambda:InvokeFunction on it)."
  value       = aws_lambda_function.function["alert-fetcher"].arn
}

output "function_names" {
  description = "Function name by crate name."
  value       = { for k, f in aws_lambda_function.function : k => f.function_name }
}

output "alerts_bucket" {
  description = "The alerts bucket (alerts/tenant={id}/date=YYYY-MM-DD/*.ndjson.gz)."
  value       = aws_s3_bucket.alerts.id
}

output "table" {
  description = "The DynamoDB table of tenant records, cursors and consent nonces."
  value       = aws_dynamodb_table.state.name
}

output "app_secret_arn" {
  description = "ARN of the app secret: write its value with `aws secretsmanager put-secret-value`."
  value       = aws_secretsmanager_secret.app.arn
}

output "secrets_prefix" {
  description = "Secrets Manager name prefix of the app and tenant secrets."
  value       = local.secrets_prefix
}

output "queue_url" {
  description = "URL of the per-tenant work queue."
  value       = aws_sqs_queue.work.url
}

output "dead_letter_queue_url" {
  description = "URL of the work queue's dead-letter queue."
  value       = aws_sqs_queue.dead_letters.url
}

output "alert_notifications_queue_url" {
  description = "URL of the queue notified of every alert object (alert_notifications); null when off. The SIEM's S3 input reads it."
  value       = one(aws_sqs_queue.alert_notifications[*].url)
}

output "alert_notifications_queue_arn" {
  description = "ARN of the queue notified of every alert object (alert_notifications), for the SIEM reader's IAM policy; null when off."
  value       = one(aws_sqs_queue.alert_notifications[*].arn)
}

output "kms_key_arn" {
  description = "ARN of the customer managed key."
  value       = aws_kms_key.this.arn
}

output "alarm_topic_arn" {
  description = "ARN of the alarm topic."
  value       = aws_sns_topic.alarms.arn
}

output "ocsf_export_dead_letter_queue_url" {
  description = "With security_lake: the ocsf-exporter's dead-letter queue (events of alert objects it failed on, to send to it again). Null without."
  value       = try(aws_sqs_queue.lake_dead_letters[0].url, null)
}

output "security_lake_prefix" {
  description = "With security_lake: where the exporter writes in the lake's bucket ({prefix}/region=…/accountId=…/eventDay=…/). Null without."
  value       = local.lake_enabled ? local.lake_prefix : null
}

output "ocsf_export_rule_name" {
  description = "With security_lake: the EventBridge rule of the alert objects' object-created events, which invokes the ocsf-exporter. Null without."
  value       = try(aws_cloudwatch_event_rule.lake[0].name, null)
}
