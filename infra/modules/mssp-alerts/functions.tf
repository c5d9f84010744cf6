# The three functions, each with its own role (least privilege: the calls its code makes, on
# the exact resources) and its own encrypted log group. The AWS calls are those of the adapters
# in shared/src/adapters/aws.rs (Secrets Manager, DynamoDB) and aws_fetch.rs (DynamoDB, S3):
#
# | function         | tenant secrets           | app secret | table                                | bucket (alerts/*)     | queue                          |
# |------------------|--------------------------|------------|--------------------------------------|-----------------------|--------------------------------|
# | consent-callback | CreateSecret, Put, Tag   | Get        | GetItem, PutItem                     |                       |                                |
# | token-refresh    | Get, Put                 | Get        | GetItem, PutItem, Scan               |                       |                                |
# | alert-fetcher    | Get, Put                 | Get        | GetItem, PutItem, UpdateItem, Scan   | Put, Get, List        | Send, Receive, Delete, GetAttr |
#
# No function may delete a tenant secret or a table item: offboarding is the operator's
# (`mssp tenants remove`, with the operator's own credentials).

locals {
  log_group_arns = { for k, g in aws_cloudwatch_log_group.function : k => g.arn }

  kms_via = {
    secretsmanager = "secretsmanager.${local.region}.amazonaws.com"
    dynamodb       = "dynamodb.${local.region}.amazonaws.com"
    s3             = "s3.${local.region}.amazonaws.com"
    sqs            = "sqs.${local.region}.amazonaws.com"
  }

  # Statements every function has: its own log streams, and the app secret (every flow reads
  # the app registration's credentials).
  common_statements = {
    for k, arn in local.log_group_arns : k => [
      {
        Sid      = "OwnLogStreams"
        Effect   = "Allow"
        Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
        Resource = "${arn}:*"
      },
      {
        Sid      = "ReadAppSecret"
        Effect   = "Allow"
        Action   = ["secretsmanager:GetSecretValue"]
        Resource = aws_secretsmanager_secret.app.arn
      },
    ]
  }

  function_statements = {
    consent-callback = [
      {
        # A completed consent stores the tenant's first tokens: creates the tenant's secret
        # (tagged with the tenant id), or writes a new version on re-consent.
        Sid      = "StoreTenantTokens"
        Effect   = "Allow"
        Action   = ["secretsmanager:CreateSecret", "secretsmanager:PutSecretValue", "secretsmanager:TagResource"]
        Resource = local.tenant_secrets_arn
      },
      {
        # Reads the pending tenant, marks it active (conditional PutItem), uses a nonce once.
        Sid      = "TenantRecordsAndNonces"
        Effect   = "Allow"
        Action   = ["dynamodb:GetItem", "dynamodb:PutItem"]
        Resource = aws_dynamodb_table.state.arn
      },
      {
        Sid       = "KeyThroughSecretsManagerAndDynamoDB"
        Effect    = "Allow"
        Action    = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
        Resource  = aws_kms_key.this.arn
        Condition = { StringEquals = { "kms:ViaService" = [local.kms_via.secretsmanager, local.kms_via.dynamodb] } }
      },
    ]
    token-refresh = [
      {
        # Reads each tenant's tokens and persists the rotated refresh token. No CreateSecret:
        # a refresh must never recreate the secret of a tenant offboarded meanwhile.
        Sid      = "RefreshTenantTokens"
        Effect   = "Allow"
        Action   = ["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"]
        Resource = local.tenant_secrets_arn
      },
      {
        # Lists the tenants (Scan), records outcomes and re-consent status (conditional PutItem).
        Sid      = "TenantRecords"
        Effect   = "Allow"
        Action   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Scan"]
        Resource = aws_dynamodb_table.state.arn
      },
      {
        Sid       = "KeyThroughSecretsManagerAndDynamoDB"
        Effect    = "Allow"
        Action    = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
        Resource  = aws_kms_key.this.arn
        Condition = { StringEquals = { "kms:ViaService" = [local.kms_via.secretsmanager, local.kms_via.dynamodb] } }
      },
    ]
    alert-fetcher = [
      {
        # Write as well as read, although the fetcher is "read-only" towards the tenants: it gets
        # each tenant's access token from the cache and refreshes (or, for application tenants,
        # mints) one when it is near expiry (DESIGN.md §6 Fetch step 1). A delegated refresh
        # rotates the refresh token, which must be persisted at once or the tenant needs
        # re-consent. Leaving every refresh to token-refresh would stall a fetch for up to a
        # refresh period whenever a token expires between two refresh runs. No CreateSecret.
        Sid      = "UseAndRefreshTenantTokens"
        Effect   = "Allow"
        Action   = ["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"]
        Resource = local.tenant_secrets_arn
      },
      {
        # Dispatch lists the tenants (Scan); a fetch reads the tenant and its cursor (GetItem),
        # takes and releases the lease and commits the cursor (conditional UpdateItem), and
        # records the outcome (conditional PutItem).
        Sid      = "TenantRecordsAndCursors"
        Effect   = "Allow"
        Action   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Scan"]
        Resource = aws_dynamodb_table.state.arn
      },
      {
        # Writes alert objects; reads and lists those of an interrupted attempt of the same
        # cursor version (alerts/tenant=…/) so a retried delivery skips what already landed.
        Sid      = "AlertObjects"
        Effect   = "Allow"
        Action   = ["s3:PutObject", "s3:GetObject"]
        Resource = "${aws_s3_bucket.alerts.arn}/alerts/*"
      },
      {
        Sid       = "ListAlertObjects"
        Effect    = "Allow"
        Action    = ["s3:ListBucket"]
        Resource  = aws_s3_bucket.alerts.arn
        Condition = { StringLike = { "s3:prefix" = ["alerts/*"] } }
      },
      {
        # SendMessage covers SendMessageBatch (dispatch); the rest is the SQS event source.
        Sid      = "WorkQueue"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
        Resource = aws_sqs_queue.work.arn
      },
      {
        Sid      = "KeyThroughItsServices"
        Effect   = "Allow"
        Action   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
        Resource = aws_kms_key.this.arn
        Condition = { StringEquals = { "kms:ViaService" = [
          local.kms_via.secretsmanager, local.kms_via.dynamodb, local.kms_via.s3, local.kms_via.sqs,
        ] } }
      },
    ]
  }
}

resource "aws_iam_role" "function" {
  for_each = local.function_names

  name        = each.value
  description = "${var.name}: execution role of ${each.key}"

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "lambda.amazonaws.com" }
      Action    = "sts:AssumeRole"
      Condition = { StringEquals = { "aws:SourceAccount" = local.account_id } }
    }]
  })

  tags = local.tags
}

resource "aws_iam_role_policy" "function" {
  for_each = local.function_names

  name = "${each.value}-least-privilege"
  role = aws_iam_role.function[each.key].id

  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = concat(local.common_statements[each.key], local.function_statements[each.key])
  })
}

# X-Ray accepts no resource-level permissions: only with tracing_mode = "Active".
resource "aws_iam_role_policy" "xray" {
  for_each = var.tracing_mode == "Active" ? local.function_names : {}

  name = "${each.value}-xray"
  role = aws_iam_role.function[each.key].id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
      Resource = "*"
    }]
  })
}

resource "aws_cloudwatch_log_group" "function" {
  for_each = local.function_names

  name              = "/aws/lambda/${each.value}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
  tags              = local.tags
}

resource "aws_lambda_function" "consent_callback" {
  #checkov:skip=CKV_AWS_116:Invoked synchronously by API Gateway only: the browser gets the answer, and an asynchronous dead-letter queue would never receive anything.
  #checkov:skip=CKV_AWS_117:Reaches only Microsoft's public endpoints and regional AWS APIs; no VPC resource to reach, and a VPC would add NAT gateways for no isolation gain.
  #checkov:skip=CKV_AWS_272:Packages are built by cargo lambda in the operator's pipeline and deployed by this module; no AWS Signer profile is part of this deployment.
  function_name                  = local.function_names["consent-callback"]
  description                    = "mssp-alerts: consent link and OAuth callback behind API Gateway"
  role                           = aws_iam_role.function["consent-callback"].arn
  runtime                        = "provided.al2023"
  handler                        = "bootstrap"
  architectures                  = [var.architecture]
  filename                       = var.consent_callback_zip
  source_code_hash               = filebase64sha256(var.consent_callback_zip)
  memory_size                    = var.memory_size.consent_callback
  timeout                        = var.timeouts.consent_callback
  reserved_concurrent_executions = var.reserved_concurrency.consent_callback
  kms_key_arn                    = aws_kms_key.this.arn

  environment {
    variables = local.service_environment
  }

  tracing_config {
    mode = var.tracing_mode
  }

  tags       = local.tags
  depends_on = [aws_cloudwatch_log_group.function, aws_iam_role_policy.function]
}

resource "aws_lambda_function" "token_refresh" {
  #checkov:skip=CKV_AWS_116:Invoked by its schedule: a failed run carries no payload worth replaying (the next scheduled run redoes all the work), and every failure raises the Errors alarm.
  #checkov:skip=CKV_AWS_117:Reaches only Microsoft's public endpoints and regional AWS APIs; no VPC resource to reach, and a VPC would add NAT gateways for no isolation gain.
  #checkov:skip=CKV_AWS_272:Packages are built by cargo lambda in the operator's pipeline and deployed by this module; no AWS Signer profile is part of this deployment.
  function_name                  = local.function_names["token-refresh"]
  description                    = "mssp-alerts: keeps every active tenant's tokens alive"
  role                           = aws_iam_role.function["token-refresh"].arn
  runtime                        = "provided.al2023"
  handler                        = "bootstrap"
  architectures                  = [var.architecture]
  filename                       = var.token_refresh_zip
  source_code_hash               = filebase64sha256(var.token_refresh_zip)
  memory_size                    = var.memory_size.token_refresh
  timeout                        = var.timeouts.token_refresh
  reserved_concurrent_executions = var.reserved_concurrency.token_refresh
  kms_key_arn                    = aws_kms_key.this.arn

  environment {
    variables = local.service_environment
  }

  tracing_config {
    mode = var.tracing_mode
  }

  tags       = local.tags
  depends_on = [aws_cloudwatch_log_group.function, aws_iam_role_policy.function]
}

resource "aws_lambda_function" "alert_fetcher" {
  #checkov:skip=CKV_AWS_116:Work items fail over to the work queue's own dead-letter queue (redrive policy); the scheduled dispatch carries no payload worth replaying, and every failure raises the Errors alarm.
  #checkov:skip=CKV_AWS_117:Reaches only Microsoft's public endpoints and regional AWS APIs; no VPC resource to reach, and a VPC would add NAT gateways for no isolation gain.
  #checkov:skip=CKV_AWS_272:Packages are built by cargo lambda in the operator's pipeline and deployed by this module; no AWS Signer profile is part of this deployment.
  function_name                  = local.function_names["alert-fetcher"]
  description                    = "mssp-alerts: dispatches and fetches every tenant's alerts into S3; direct invoke for SOC tooling"
  role                           = aws_iam_role.function["alert-fetcher"].arn
  runtime                        = "provided.al2023"
  handler                        = "bootstrap"
  architectures                  = [var.architecture]
  filename                       = var.alert_fetcher_zip
  source_code_hash               = filebase64sha256(var.alert_fetcher_zip)
  memory_size                    = var.memory_size.alert_fetcher
  timeout                        = var.timeouts.alert_fetcher
  reserved_concurrent_executions = var.reserved_concurrency.alert_fetcher
  kms_key_arn                    = aws_kms_key.this.arn

  environment {
    variables = merge(local.service_environment, local.fetcher_environment)
  }

  tracing_config {
    mode = var.tracing_mode
  }

  tags       = local.tags
  depends_on = [aws_cloudwatch_log_group.function, aws_iam_role_policy.function]
}

locals {
  functions = {
    consent-callback = aws_lambda_function.consent_callback
    token-refresh    = aws_lambda_function.token_refresh
    alert-fetcher    = aws_lambda_function.alert_fetcher
  }
}
