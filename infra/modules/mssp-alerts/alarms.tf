# Alarms to one encrypted SNS topic: a tenant stuck in the dead-letter queue, an alert object the
# SIEM's reader gave up on (alert_notifications), any function error, a tenant that needs
# re-consent, the app registration's credentials refused or its client secret within 30 days of
# expiring, and a fleet whose furthest-behind tenant trails by more than lag_alarm_seconds. The
# last four watch the metrics the functions write as Embedded Metric Format lines
# (shared/src/metrics.rs; the dashboard of dashboard.tf shows them).

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

# Each alarm fires when its statistic over five minutes exceeds its threshold (the secret's days
# left: falls below it) — any occurrence, except the lag (no data: nothing happened) — and
# notifies the topic; they differ in what they count. `notify_ok`: also when it clears — the dead-letter queue drained, a function stopped
# failing, the lag recovered. Not for re-consent: the count drops back to zero while the tenant
# still needs re-consent.
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

  # What an alarm is unless it says otherwise: any occurrence fires it, and it notifies again
  # when it clears.
  alarm_defaults = { threshold = 0, comparison = "GreaterThanThreshold", notify_ok = true }

  alarms = { for k, a in merge(
    {
      for k, d in local.dead_letters : k => {
        description = d.meaning
        namespace   = "AWS/SQS"
        metric      = "ApproximateNumberOfMessagesVisible"
        dimensions  = { QueueName = d.queue }
        statistic   = "Maximum"
      }
    },
    {
      for k, f in aws_lambda_function.function : "${k}-errors" => {
        description = "${k} reported errors: see its log group /aws/lambda/${f.function_name}."
        namespace   = "AWS/Lambda"
        metric      = "Errors"
        dimensions  = { FunctionName = f.function_name }
        statistic   = "Sum"
      }
    },
    {
      # The functions' own metrics: in the namespace of the module, without dimensions.
      for k, a in {
        tenants-needing-reconsent = {
          description = "A tenant needs re-consent: `mssp tenants` lists it with a fresh consent link to send to the customer's admin."
          metric      = "TenantsNeedingReconsent"
          statistic   = "Sum"
          notify_ok   = false
        }
        app-credentials = {
          description = "Microsoft refused the app registration's client id or secret in a token refresh cycle: no tenant's token can be renewed, and every tenant stops once its access token expires. The token-refresh log line \"refresh run finished\" and `mssp status` say why (AADSTS code); usually the client secret expired or the app secret holds its Secret ID instead of its Value: create a new secret (Entra admin center > App registrations > Certificates & secrets) and write it into the app secret."
          metric      = "AppCredentialsRefused"
          statistic   = "Maximum"
        }
        client-secret-expiring = {
          description = "The app registration's client secret expires within 30 days (client_secret_expires in the app secret): create a new one (Entra admin center > App registrations > Certificates & secrets), write its Value and expiry into the app secret; the old one keeps working until it expires."
          metric      = "ClientSecretDaysLeft"
          statistic   = "Minimum"
          threshold   = 30
          comparison  = "LessThanThreshold"
        }
        fetch-lag = {
          description = "A tenant's alerts trail by more than ${local.lag_alarm_seconds} s (three fetch periods): the dashboard's table names the tenants furthest behind; see their last fetch in `mssp status` or the alert-fetcher logs (throttling, a backlog larger than a run, a failing API), and the FetchFailures graph."
          metric      = "LagSeconds"
          statistic   = "Maximum"
          threshold   = local.lag_alarm_seconds
        }
      } : k => merge({ namespace = local.metric_namespace, dimensions = null }, a)
    },
  ) : k => merge(local.alarm_defaults, a) }
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
  comparison_operator = each.value.comparison
  threshold           = each.value.threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = each.value.notify_ok ? [aws_sns_topic.alarms.arn] : null
  tags                = local.tags
}
