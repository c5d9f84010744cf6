# The CloudWatch dashboard of the metrics the functions write as Embedded Metric Format lines
# (shared/src/metrics.rs; README, "Metrics"). CloudWatch Logs extracts them from the functions'
# log groups into local.metric_namespace: no PutMetricData, no extra permission. Every metric is
# published per API (dimension Api) and for the fleet (no dimension); with metrics_per_tenant,
# LagSeconds and FetchFailures per tenant too (dimension TenantId). The per-tenant view without
# that cost is the Logs Insights widget, which reads the TenantId member of the log lines.
# tests/tests/integration/metrics.rs checks that this file shows every metric the functions write.

locals {
  apis = ["graph", "mde", "siem"]

  # The fetch schedule's period in seconds, when it is a rate() expression.
  fetch_rate       = try(regex("^rate\\((\\d+) (minute|hour|day)s?\\)$", var.fetch_schedule), null)
  fetch_interval_s = local.fetch_rate == null ? null : tonumber(local.fetch_rate[0]) * { minute = 60, hour = 3600, day = 86400 }[local.fetch_rate[1]]

  # The lag alarm's threshold: three fetch periods behind (15 minutes for a cron schedule).
  lag_alarm_seconds = coalesce(var.lag_alarm_seconds, try(3 * local.fetch_interval_s, 900))

  # A metric of the namespace: per API (one line each) and for the fleet.
  per_api = {
    for metric in ["AlertsDelivered", "LagSeconds", "FetchFailures", "LateAlerts"] : metric => concat(
      [[local.metric_namespace, metric, { label = "fleet" }]],
      [for api in local.apis : [local.metric_namespace, metric, "Api", api, { label = api }]],
    )
  }

  metric_widget = {
    view    = "timeSeries"
    region  = local.region
    period  = 300
    stacked = false
  }

  dashboard_widgets = concat(
    [
      {
        type = "text", x = 0, y = 0, width = 24, height = 2
        properties = {
          markdown = "## ${var.name}: alerts from Microsoft Defender tenants\nMetrics of namespace `${local.metric_namespace}`, written by the functions as Embedded Metric Format lines. Alarms notify the topic `${aws_sns_topic.alarms.name}`; README, \"Metrics\", says what each means and what to do."
        }
      },
      {
        type = "metric", x = 0, y = 2, width = 12, height = 6
        properties = merge(local.metric_widget, {
          title   = "Alerts delivered (sum per 5 minutes)"
          stat    = "Sum"
          metrics = local.per_api["AlertsDelivered"]
        })
      },
      {
        type = "metric", x = 12, y = 2, width = 12, height = 6
        properties = merge(local.metric_widget, {
          title   = "Lag: how far the furthest-behind tenant trails (seconds)"
          stat    = "Maximum"
          metrics = local.per_api["LagSeconds"]
          annotations = {
            horizontal = [{ label = "lag alarm", value = local.lag_alarm_seconds }]
          }
          yAxis = { left = { min = 0 } }
        })
      },
      {
        type = "metric", x = 0, y = 8, width = 12, height = 6
        properties = merge(local.metric_widget, {
          title = "Fetch failures and SIEM region mismatches (sum)"
          stat  = "Sum"
          metrics = concat(
            local.per_api["FetchFailures"],
            [[local.metric_namespace, "SiemRegionMismatches", "Api", "siem", { label = "SIEM region mismatches" }]],
          )
        })
      },
      {
        type = "metric", x = 12, y = 8, width = 12, height = 6
        properties = merge(local.metric_widget, {
          title   = "Late alerts found by the reconciliation sweep (sum)"
          stat    = "Sum"
          metrics = local.per_api["LateAlerts"]
        })
      },
      {
        type = "metric", x = 0, y = 14, width = 12, height = 6
        properties = merge(local.metric_widget, {
          title = "Token refresh: renewed, needing re-consent, failed (sum)"
          stat  = "Sum"
          metrics = [
            [local.metric_namespace, "TokensRefreshed", { label = "renewed" }],
            [local.metric_namespace, "TenantsNeedingReconsent", { label = "needing re-consent" }],
            [local.metric_namespace, "RefreshFailures", { label = "failed" }],
          ]
        })
      },
      {
        type = "alarm", x = 12, y = 14, width = 12, height = 6
        properties = {
          title  = "Alarms"
          alarms = [for a in aws_cloudwatch_metric_alarm.alarm : a.arn]
        }
      },
      {
        type = "log", x = 0, y = 20, width = 24, height = 8
        properties = {
          title  = "Tenants furthest behind, last fetches (Logs Insights over the fetcher's EMF lines)"
          region = local.region
          view   = "table"
          query  = "SOURCE '${aws_cloudwatch_log_group.function["alert-fetcher"].name}' | filter Event = \"fetch\" | stats max(LagSeconds) as lag_s, sum(AlertsDelivered) as delivered, sum(FetchFailures) as failures by TenantId, Api | sort lag_s desc | limit 25"
        }
      },
      {
        type = "metric", x = 0, y = 28, width = 24, height = 6
        properties = merge(local.metric_widget, {
          title = "App registration: credentials refused (1 = refused) and days until the client secret expires"
          metrics = [
            [local.metric_namespace, "AppCredentialsRefused", { label = "credentials refused", stat = "Maximum" }],
            [local.metric_namespace, "ClientSecretDaysLeft", { label = "client secret days left", stat = "Minimum", yAxis = "right" }],
          ]
          annotations = {
            horizontal = [{ label = "secret expiry alarm", value = 30, yAxis = "right" }]
          }
        })
      },
    ],
    var.metrics_per_tenant ? [
      {
        type = "metric", x = 0, y = 34, width = 24, height = 6
        properties = merge(local.metric_widget, {
          title = "Lag per tenant (seconds; metrics_per_tenant)"
          metrics = [[{
            id         = "lag"
            expression = "SEARCH('{\"${local.metric_namespace}\",TenantId} MetricName=\"LagSeconds\"', 'Maximum', 300)"
          }]]
        })
      },
    ] : [],
  )
}

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = var.name
  dashboard_body = jsonencode({ widgets = local.dashboard_widgets })
}
