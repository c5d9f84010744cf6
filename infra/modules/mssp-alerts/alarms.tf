# Alarms to one encrypted SNS topic: a tenant stuck in the dead-letter queue, an alert object the
# SIEM's reader gave up on (alert_notifications), any function error, and any tenant that needs
# re-consent (token-refresh logs "tenant needs re-consent" for each,
# shared/src/flows/refresh.rs; the JSON log line has the message at the top level).

locals {
  metric_namespace = "MSSPAlerts/${var.name}"
}

resource "aws_sns_topic" "alarms" {
  name              = "${var.name}-alarms"
  kms_master_key_id = aws_kms_key.this.arn
  tags              = local.tags
}

resource "aws_sns_topic_policy" "alarms" {
  arn = aws_sns_topic.alarms.arn

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "CloudWatchAlarmsOfThisAccount"
      Effect    = "Allow"
      Principal = { Service = "cloudwatch.amazonaws.com" }
      Action    = "sns:Publish"
      Resource  = aws_sns_topic.alarms.arn
      Condition = { StringEquals = { "aws:SourceAccount" = local.account_id } }
    }]
  })
}

resource "aws_sns_topic_subscription" "email" {
  count = var.alarm_email == null ? 0 : 1

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

# Each alarm fires on any occurrence within five minutes (no data: nothing happened) and notifies
# the topic; they differ in what they count. `notify_ok`: also when it clears — the dead-letter
# queue drained, a function stopped failing. Not for re-consent: the count drops back to zero
# while the tenant still needs re-consent.
locals {
  # A dead-letter queue holding anything: what it means, by alarm name.
  dead_letters = merge(
    {
      work-dead-letters = {
        queue   = aws_sqs_queue.dead_letters.name
        meaning = "A tenant's work item failed ${var.max_receive_count} times and sits in ${aws_sqs_queue.dead_letters.name}: see the alert-fetcher logs for that tenant, fix, then redrive."
      }
    },
    {
      for q in aws_sqs_queue.lake_dead_letters : "ocsf-export-dead-letters" => {
        queue   = q.name
        meaning = "The ocsf-exporter failed on an alert object's event three times and the event sits in ${q.name}: that object is not in the Security Lake. See the exporter's logs, fix, then send the event to the function again."
      }
    },
    {
      for q in aws_sqs_queue.alert_notification_dead_letters : "alert-notification-dead-letters" => {
        queue   = q.name
        meaning = "The notification of an alert object failed ${var.max_receive_count} deliveries to the SIEM's reader and sits in ${q.name}: that object is not in the SIEM. Fix the reader (its S3 input's errors), then redrive."
      }
    },
  )

  alarms = merge(
    {
      for k, d in local.dead_letters : k => {
        description = d.meaning
        namespace   = "AWS/SQS"
        metric      = "ApproximateNumberOfMessagesVisible"
        dimensions  = { QueueName = d.queue }
        statistic   = "Maximum"
        notify_ok   = true
      }
    },
    {
      for k, f in aws_lambda_function.function : "${k}-errors" => {
        description = "${k} reported errors: see its log group /aws/lambda/${f.function_name}."
        namespace   = "AWS/Lambda"
        metric      = "Errors"
        dimensions  = { FunctionName = f.function_name }
        statistic   = "Sum"
        notify_ok   = true
      }
    },
    {
      tenants-needing-reconsent = {
        description = "A tenant needs re-consent: `mssp tenants` lists it with a fresh consent link to send to the customer's admin."
        namespace   = local.metric_namespace
        metric      = aws_cloudwatch_log_metric_filter.reconsent.metric_transformation[0].name
        dimensions  = null
        statistic   = "Sum"
        notify_ok   = false
      }
    },
  )
}

resource "aws_cloudwatch_metric_alarm" "alarm" {
  for_each = local.alarms

  alarm_name          = "${var.name}-${each.key}"
  alarm_description   = each.value.description
  namespace           = each.value.namespace
  metric_name         = each.value.metric
  dimensions          = each.value.dimensions
  statistic           = each.value.statistic
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = each.value.notify_ok ? [aws_sns_topic.alarms.arn] : null
  tags                = local.tags
}

resource "aws_cloudwatch_log_metric_filter" "reconsent" {
  name           = "${var.name}-tenants-needing-reconsent"
  log_group_name = aws_cloudwatch_log_group.function["token-refresh"].name
  pattern        = "{ $.message = \"tenant needs re-consent\" }"

  metric_transformation {
    name          = "TenantsNeedingReconsent"
    namespace     = local.metric_namespace
    value         = "1"
    default_value = "0"
    unit          = "Count"
  }
}
