# Amazon Security Lake, off unless var.security_lake is set: the ocsf-exporter function (its
# role, log group, alarm and settings come with the other functions, functions.tf) turns each
# alert object into OCSF Detection Findings in Parquet under the custom source's prefix,
# `{prefix}/region={region}/accountId={account}/eventDay={YYYYMMDD}/{object}.parquet`
# (lake/src/lib.rs). It is triggered by the alerts bucket's object-created events through
# EventBridge (the bucket's notification configuration also carries the SIEM's queue when
# alert_notifications is on; EventBridge delivery does not conflict with it).
#
# Why object-created events rather than a schedule: exactly once per record comes without state.
# A lake file is a function of one alert object and is named after it, so an event delivered
# twice, retried, or redriven from the dead-letter queue rewrites the same file with the same
# rows; a schedule would have to remember which objects it exported, and a crash between
# writing and remembering would duplicate rows. Security Lake asks for files in increments of 5
# minutes to a day (for query performance, not as an ingestion condition): the fetcher writes an
# object only for a round that found something new (an idle round writes none), so a tenant's
# files come at most once per fetch round (every 5 minutes by default) unless a backlog spans
# several chunks; a fleet writes up to one small file per active tenant per round. Where
# query cost matters, compact a day's partition (e.g. an Athena CTAS) after the day closes.
#
# Events the function fails on (after Lambda's two retries of an asynchronous invoke) go to its
# dead-letter queue, which alarms; redrive them to the function.
#
# The exporter writes with the custom source's role (Security Lake creates it with the source;
# its trust policy names this account and the external id): it may only sts:AssumeRole that
# role. Without role_arn it writes with its own role, allowed s3:PutObject on the prefix only.

locals {
  lake_enabled = var.security_lake != null

  # What the fetcher writes (MSSP_OUTPUT_FORMAT), and what the exporter reads: the raw records
  # when the fetcher writes them, else their OCSF rendering.
  output_prefixes = {
    raw        = ["alerts/"]
    ocsf       = ["ocsf/"]
    "raw+ocsf" = ["alerts/", "ocsf/"]
  }[coalesce(var.output_format, "raw")]
  lake_input_prefix = local.output_prefixes[0]

  lake_created  = local.lake_enabled && try(var.security_lake.create_custom_log_source, false)
  lake_location = local.lake_created ? aws_securitylake_custom_log_source.this[0].provider_details[0].location : null
  lake_prefix = local.lake_enabled ? (
    local.lake_created
    ? trimsuffix(replace(local.lake_location, "/^s3://[^/]+//", ""), "/")
    : coalesce(var.security_lake.prefix, "ext/${var.security_lake.source_name}")
  ) : ""
  lake_role_arn = local.lake_created ? aws_securitylake_custom_log_source.this[0].provider_details[0].role_arn : try(var.security_lake.role_arn, null)
  lake_assumes  = local.lake_created || try(var.security_lake.role_arn, null) != null

  exporter_environment = merge(
    {
      MSSP_BUCKET          = aws_s3_bucket.alerts.id
      MSSP_LAKE_BUCKET     = try(var.security_lake.bucket, "")
      MSSP_LAKE_PREFIX     = local.lake_prefix
      MSSP_LAKE_ACCOUNT_ID = coalesce(try(var.security_lake.account_id, null), local.account_id)
      MSSP_LAKE_REGION     = coalesce(try(var.security_lake.region, null), local.region)
    },
    { for name, value in {
      MSSP_LAKE_ROLE_ARN    = local.lake_role_arn
      MSSP_LAKE_EXTERNAL_ID = try(var.security_lake.external_id, null)
    } : name => value if value != null },
  )

  exporter_statements = concat(
    [
      {
        # Reads the alert object an event names (decrypting through S3: key_via).
        Sid      = "ReadAlertObjects"
        Effect   = "Allow"
        Action   = ["s3:GetObject"]
        Resource = "${aws_s3_bucket.alerts.arn}/${local.lake_input_prefix}*"
      },
      {
        # Lambda sends an event it gave up on to the dead-letter queue with the function's role.
        Sid      = "DeadLetters"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage"]
        Resource = try(aws_sqs_queue.lake_dead_letters[0].arn, "arn:${local.partition}:sqs:${local.region}:${local.account_id}:${var.name}-ocsf-export-dlq")
      },
    ],
    local.lake_assumes ? [
      {
        Sid      = "AssumeCustomSourceRole"
        Effect   = "Allow"
        Action   = ["sts:AssumeRole"]
        Resource = local.lake_role_arn
      },
      ] : [
      {
        Sid      = "WriteLakeFiles"
        Effect   = "Allow"
        Action   = ["s3:PutObject"]
        Resource = "arn:${local.partition}:s3:::${try(var.security_lake.bucket, "")}/${local.lake_prefix}/*"
      },
    ],
  )
}

resource "aws_securitylake_custom_log_source" "this" {
  count = local.lake_created ? 1 : 0

  source_name    = var.security_lake.source_name
  source_version = var.security_lake.source_version
  event_classes  = [var.security_lake.event_class]

  configuration {
    crawler_configuration {
      role_arn = var.security_lake.crawler_role_arn
    }
    provider_identity {
      external_id = coalesce(var.security_lake.external_id, var.name)
      principal   = local.account_id
    }
  }
}

resource "aws_sqs_queue" "lake_dead_letters" {
  count = local.lake_enabled ? 1 : 0

  name                      = "${var.name}-ocsf-export-dlq"
  message_retention_seconds = 1209600
  # SQS-managed encryption: Lambda writes it with the function's role, which has no key grant.
  sqs_managed_sse_enabled = true
  tags                    = local.tags
}

resource "aws_cloudwatch_event_rule" "lake" {
  count = local.lake_enabled ? 1 : 0

  name        = "${var.name}-ocsf-export"
  description = "${var.name}: every alert object written to ${aws_s3_bucket.alerts.id} → ocsf-exporter"
  event_pattern = jsonencode({
    source      = ["aws.s3"]
    detail-type = ["Object Created"]
    detail = {
      bucket = { name = [aws_s3_bucket.alerts.id] }
      object = { key = [{ prefix = local.lake_input_prefix }] }
    }
  })
  tags = local.tags
}

resource "aws_cloudwatch_event_target" "lake" {
  count = local.lake_enabled ? 1 : 0

  rule = aws_cloudwatch_event_rule.lake[0].name
  arn  = aws_lambda_function.function["ocsf-exporter"].arn
}

resource "aws_lambda_permission" "lake" {
  count = local.lake_enabled ? 1 : 0

  statement_id  = "AllowAlertObjectEvents"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.function["ocsf-exporter"].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.lake[0].arn
}
