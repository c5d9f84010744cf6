# State addresses that changed, so `terraform apply` of this version over a deployment of an
# earlier one moves the resources instead of destroying and recreating them
# (infra/ci/check-moves.sh shows the plan of such an upgrade is moves only).

# The three functions became one resource over local.functions (functions.tf).
moved {
  from = aws_lambda_function.consent_callback
  to   = aws_lambda_function.function["consent-callback"]
}

moved {
  from = aws_lambda_function.token_refresh
  to   = aws_lambda_function.function["token-refresh"]
}

moved {
  from = aws_lambda_function.alert_fetcher
  to   = aws_lambda_function.function["alert-fetcher"]
}

# The alarms became one resource over local.alarms (alarms.tf), keyed by name without the prefix.
moved {
  from = aws_cloudwatch_metric_alarm.dead_letters
  to   = aws_cloudwatch_metric_alarm.alarm["work-dead-letters"]
}

moved {
  from = aws_cloudwatch_metric_alarm.reconsent
  to   = aws_cloudwatch_metric_alarm.alarm["tenants-needing-reconsent"]
}

moved {
  from = aws_cloudwatch_metric_alarm.function_errors["consent-callback"]
  to   = aws_cloudwatch_metric_alarm.alarm["consent-callback-errors"]
}

moved {
  from = aws_cloudwatch_metric_alarm.function_errors["token-refresh"]
  to   = aws_cloudwatch_metric_alarm.alarm["token-refresh-errors"]
}

moved {
  from = aws_cloudwatch_metric_alarm.function_errors["alert-fetcher"]
  to   = aws_cloudwatch_metric_alarm.alarm["alert-fetcher-errors"]
}
