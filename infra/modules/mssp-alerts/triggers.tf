# What invokes the functions: three EventBridge schedules, the work queue, and the consent API.

# --- schedules ----------------------------------------------------------------------------------

locals {
  schedules = {
    # The fetcher's scheduled event is its dispatch: one work item per active tenant (and one
    # per backfill asked for).
    alert-fetcher = { function = "alert-fetcher", expression = var.fetch_schedule, input = null, statement = "AllowSchedule" }
    token-refresh = { function = "token-refresh", expression = var.refresh_schedule, input = null, statement = "AllowSchedule" }
    # The reconciliation sweep's dispatch: a direct invoke of the fetcher, its input constant.
    sweep = {
      function   = "alert-fetcher"
      expression = var.sweep_schedule
      input      = jsonencode({ action = "dispatch", job = "sweep" })
      statement  = "AllowSweepSchedule"
    }
  }
}

resource "aws_cloudwatch_event_rule" "schedule" {
  for_each = local.schedules

  name                = "${var.name}-${each.key}"
  description         = "${var.name}: runs ${each.key} on its schedule"
  schedule_expression = each.value.expression
  tags                = local.tags
}

resource "aws_cloudwatch_event_target" "schedule" {
  for_each = local.schedules

  rule  = aws_cloudwatch_event_rule.schedule[each.key].name
  arn   = aws_lambda_function.function[each.value.function].arn
  input = each.value.input
}

resource "aws_lambda_permission" "schedule" {
  for_each = local.schedules

  statement_id  = each.value.statement
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.function[each.value.function].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.schedule[each.key].arn
}

# --- work queue ---------------------------------------------------------------------------------

resource "aws_lambda_event_source_mapping" "work" {
  event_source_arn        = aws_sqs_queue.work.arn
  function_name           = aws_lambda_function.function["alert-fetcher"].arn
  batch_size              = var.fetch_batch_size
  function_response_types = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = var.fetch_max_concurrency
  }

  depends_on = [aws_iam_role_policy.function]
}

# --- consent API --------------------------------------------------------------------------------

locals {
  api_log_group = "/aws/apigateway/${var.name}-consent"
}

resource "aws_apigatewayv2_api" "consent" {
  name          = "${var.name}-consent"
  description   = "${var.name}: the consent link and the OAuth callback customers' admins open in a browser"
  protocol_type = "HTTP"
  tags          = local.tags
}

resource "aws_apigatewayv2_integration" "consent" {
  api_id                 = aws_apigatewayv2_api.consent.id
  integration_type       = "AWS_PROXY"
  integration_uri        = aws_lambda_function.function["consent-callback"].invoke_arn
  payload_format_version = "2.0"
  timeout_milliseconds   = 30000
}

resource "aws_apigatewayv2_route" "consent" {
  #checkov:skip=CKV_AWS_309:The consent link is opened unauthenticated by the customer's admin in a browser, and Microsoft redirects that browser back to the callback: the signed, expiring, single-use state parameter is the authorization, checked by the function.
  for_each = toset(["GET /consent/start", "GET /consent/callback"])

  api_id    = aws_apigatewayv2_api.consent.id
  route_key = each.value
  target    = "integrations/${aws_apigatewayv2_integration.consent.id}"
}

resource "aws_cloudwatch_log_group" "api" {
  name              = local.api_log_group
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
  tags              = local.tags
}

resource "aws_apigatewayv2_stage" "consent" {
  api_id      = aws_apigatewayv2_api.consent.id
  name        = "$default"
  auto_deploy = true

  default_route_settings {
    throttling_rate_limit  = var.api_throttling.rate_limit
    throttling_burst_limit = var.api_throttling.burst_limit
  }

  # No query string in the access log: the callback's query holds the authorization code and
  # the signed state.
  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.api.arn
    format = jsonencode({
      requestId          = "$context.requestId"
      ip                 = "$context.identity.sourceIp"
      requestTime        = "$context.requestTime"
      routeKey           = "$context.routeKey"
      status             = "$context.status"
      responseLength     = "$context.responseLength"
      integrationStatus  = "$context.integrationStatus"
      integrationError   = "$context.integrationErrorMessage"
      integrationLatency = "$context.integrationLatency"
    })
  }

  tags = local.tags
}

resource "aws_lambda_permission" "api" {
  statement_id  = "AllowConsentApi"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.function["consent-callback"].function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.consent.execution_arn}/*/GET/consent/*"
}
