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

# --- alert notifications (var.alert_notifications) ----------------------------------------------
# The alerts bucket notifies this queue of every object written under alerts/ (s3:ObjectCreated:*),
# one message per object, for the SIEM's S3 input to read (README, "Deploy": Splunk's SQS-based
# S3 input, Elastic's aws-s3 input). A message names the bucket and the object key, never alert
# content, so SQS-managed encryption serves: S3 needs no use of the module's key to send, and the
# SIEM's reader needs the key only to decrypt the objects themselves. A notification its reader
# fails max_receive_count times moves to the dead-letter queue, which alarms (alarms.tf).

resource "aws_sqs_queue" "alert_notification_dead_letters" {
  count = var.alert_notifications ? 1 : 0

  name                      = "${var.name}-alert-notifications-dlq"
  message_retention_seconds = 1209600 # 14 days, the most SQS keeps
  sqs_managed_sse_enabled   = true
  tags                      = local.tags
}

resource "aws_sqs_queue" "alert_notifications" {
  count = var.alert_notifications ? 1 : 0

  name = "${var.name}-alert-notifications"
  # While a reader fetches the object a message names (Elastic's aws-s3 input asks for 300 s by
  # default and extends it while it reads).
  visibility_timeout_seconds = 300
  message_retention_seconds  = 1209600 # 14 days: a SIEM outage of days loses no notification
  sqs_managed_sse_enabled    = true

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.alert_notification_dead_letters[0].arn
    maxReceiveCount     = var.max_receive_count
  })

  tags = local.tags
}

# Only the alerts bucket of this account may send to the queue.
resource "aws_sqs_queue_policy" "alert_notifications" {
  count = var.alert_notifications ? 1 : 0

  queue_url = aws_sqs_queue.alert_notifications[0].id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "AlertsBucketNotifications"
      Effect    = "Allow"
      Principal = { Service = "s3.amazonaws.com" }
      Action    = "sqs:SendMessage"
      Resource  = aws_sqs_queue.alert_notifications[0].arn
      Condition = {
        ArnEquals    = { "aws:SourceArn" = aws_s3_bucket.alerts.arn }
        StringEquals = { "aws:SourceAccount" = local.account_id }
      }
    }]
  })
}

# The bucket's whole notification configuration (S3 keeps one per bucket): the SIEM's queue, and
# EventBridge for the ocsf-exporter (lake.tf).
resource "aws_s3_bucket_notification" "alerts" {
  count = var.alert_notifications || local.lake_enabled ? 1 : 0

  bucket      = aws_s3_bucket.alerts.id
  eventbridge = local.lake_enabled

  dynamic "queue" {
    for_each = var.alert_notifications ? [aws_sqs_queue.alert_notifications[0].arn] : []
    content {
      id            = "alert-objects"
      queue_arn     = queue.value
      events        = ["s3:ObjectCreated:*"]
      filter_prefix = "alerts/"
    }
  }

  # S3 checks that it may send to the queue when the configuration is written.
  depends_on = [aws_sqs_queue_policy.alert_notifications]
}
