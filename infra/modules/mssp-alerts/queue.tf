# The per-tenant work queue (DESIGN.md §3): the scheduled dispatch sends one message
# {"tenant_id": "…"} per active tenant; the SQS event source hands them to the fetcher, which
# reports the tenants it could not fetch (ReportBatchItemFailures). A tenant failing
# max_receive_count times in a row lands in the dead-letter queue, which alarms.

resource "aws_sqs_queue" "dead_letters" {
  name                              = "${var.name}-work-dlq"
  message_retention_seconds         = 1209600 # 14 days, the most SQS keeps
  kms_master_key_id                 = aws_kms_key.this.arn
  kms_data_key_reuse_period_seconds = 300
  tags                              = local.tags
}

resource "aws_sqs_queue" "work" {
  name = "${var.name}-work"
  # Lambda's guidance for an SQS event source: at least six times the function's timeout, so
  # a message is not redelivered while a throttled or retried batch is still running.
  visibility_timeout_seconds        = 6 * local.function_settings["alert-fetcher"].timeout
  message_retention_seconds         = 86400 # a day: older work is superseded by later dispatches
  kms_master_key_id                 = aws_kms_key.this.arn
  kms_data_key_reuse_period_seconds = 300

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letters.arn
    maxReceiveCount     = var.max_receive_count
  })

  tags = local.tags
}
