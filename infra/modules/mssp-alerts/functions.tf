# The functions (three, and the ocsf-exporter with var.security_lake), each with its own role
# (least privilege: the calls its code makes, on the exact resources) and its own encrypted log
# group. The AWS calls are those of the adapters
# in shared/src/adapters/aws.rs (Secrets Manager, DynamoDB) and aws_fetch.rs (DynamoDB, S3):
#
# | function         | tenant secrets           | app secret | table                                | bucket (alerts/*)     | queue                          |
# |------------------|--------------------------|------------|--------------------------------------|-----------------------|--------------------------------|
# | consent-callback | CreateSecret, Put, Tag   | Get        | GetItem, PutItem                     |                       |                                |
# | token-refresh    | Get, Put                 | Get        | GetItem, PutItem, Scan               |                       |                                |
# | alert-fetcher    | Get, Put                 | Get        | GetItem, PutItem, UpdateItem, Query, Scan | Put, Get, List (alerts/*, ocsf/* with OCSF output) | Send, Receive, Delete, GetAttr |
# | ocsf-exporter    |                          |            |                                      | Get (alerts/*, ocsf/*) | — ; writes the lake (lake.tf)  |
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

  # The key, only through the services that hold each function's data (kms:ViaService): the
  # statement every role's policy ends with.
  key_via = {
    consent-callback = [local.kms_via.secretsmanager, local.kms_via.dynamodb]
    token-refresh    = [local.kms_via.secretsmanager, local.kms_via.dynamodb]
    alert-fetcher    = [local.kms_via.secretsmanager, local.kms_via.dynamodb, local.kms_via.s3, local.kms_via.sqs]
    ocsf-exporter    = [local.kms_via.s3]
  }
  key_statements = {
    for k, via in local.key_via : k => [{
      # The exporter only reads (SSE-KMS alert objects): Decrypt.
      Sid       = "KeyThroughItsServices"
      Effect    = "Allow"
      Action    = k == "ocsf-exporter" ? ["kms:Decrypt"] : ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
      Resource  = aws_kms_key.this.arn
      Condition = { StringEquals = { "kms:ViaService" = via } }
    }]
  }

  # Statements every function has: its own log streams, and the app secret (every flow reads
  # the app registration's credentials; not the ocsf-exporter, which runs no flow).
  common_statements = {
    for k, arn in local.log_group_arns : k => concat([
      {
        Sid      = "OwnLogStreams"
        Effect   = "Allow"
        Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
        Resource = "${arn}:*"
      }], k == "ocsf-exporter" ? [] : [
      {
        Sid      = "ReadAppSecret"
        Effect   = "Allow"
        Action   = ["secretsmanager:GetSecretValue"]
        Resource = aws_secretsmanager_secret.app.arn
      },
    ])
  }

  # Lists the active tenants: a Query of the status index, never a Scan of the table.
  active_tenants_statement = {
    Sid      = "ActiveTenants"
    Effect   = "Allow"
    Action   = ["dynamodb:Query"]
    Resource = "${aws_dynamodb_table.state.arn}/index/by-status"
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
        # Records outcomes and re-consent status (conditional PutItem).
        Sid      = "TenantRecords"
        Effect   = "Allow"
        Action   = ["dynamodb:GetItem", "dynamodb:PutItem"]
        Resource = aws_dynamodb_table.state.arn
      },
      local.active_tenants_statement,
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
        # Dispatch lists the active tenants (Query of the status index); status lists them all
        # (Scan); a fetch reads the tenant and its cursors in one
        # BatchGetItem (GetItem after a lost race), takes and releases the lease and commits the
        # cursor (conditional UpdateItem), records an outcome that changed (conditional PutItem)
        # and adds what it delivered to the delivery index (PutItem); a sweep or backfill reads
        # the index of its days (Query).
        Sid      = "TenantRecordsAndCursors"
        Effect   = "Allow"
        Action   = ["dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query", "dynamodb:Scan"]
        Resource = aws_dynamodb_table.state.arn
      },
      local.active_tenants_statement,
      {
        # Writes alert objects; reads and lists those of an interrupted attempt of the same
        # cursor version (alerts/tenant=…/) so a retried delivery skips what already landed.
        # With output_format ocsf or raw+ocsf, the same under ocsf/ (the OCSF objects).
        Sid      = "AlertObjects"
        Effect   = "Allow"
        Action   = ["s3:PutObject", "s3:GetObject"]
        Resource = [for p in local.output_prefixes : "${aws_s3_bucket.alerts.arn}/${p}*"]
      },
      {
        Sid       = "ListAlertObjects"
        Effect    = "Allow"
        Action    = ["s3:ListBucket"]
        Resource  = aws_s3_bucket.alerts.arn
        Condition = { StringLike = { "s3:prefix" = [for p in local.output_prefixes : "${p}*"] } }
      },
      {
        # SendMessage covers SendMessageBatch (dispatch); the rest is the SQS event source.
        Sid      = "WorkQueue"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
        Resource = aws_sqs_queue.work.arn
      },
    ]
    ocsf-exporter = local.exporter_statements
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
    Version = "2012-10-17"
    Statement = concat(
      local.common_statements[each.key], local.function_statements[each.key], local.key_statements[each.key],
    )
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

# What sets each function apart; everything else is one shape (aws_lambda_function.function).
# The environments are the maps of main.tf (tests/tests/integration/infra_config.rs reads them
# from here).
locals {
  functions = {
    consent-callback = {
      description = "mssp-alerts: consent link and OAuth callback behind API Gateway"
      environment = local.service_environment
    }
    token-refresh = {
      description = "mssp-alerts: keeps every active tenant's tokens alive"
      environment = local.service_environment
    }
    alert-fetcher = {
      description = "mssp-alerts: dispatches and fetches every tenant's alerts into S3; direct invoke for SOC tooling"
      environment = merge(local.service_environment, local.fetcher_environment)
    }
    ocsf-exporter = {
      description = "mssp-alerts: each alert object as OCSF Parquet in the Amazon Security Lake custom source"
      environment = local.exporter_environment
    }
  }

  # The settings of var.functions over these defaults: a field left null keeps its default.
  # (Apart from the environments: the work queue's visibility timeout follows the fetcher's.)
  # No reserved concurrency by default: a fresh account's quota is 10 concurrent executions and
  # AWS keeps 10 unreserved, so any reservation fails `terraform apply` there.
  function_settings = {
    for name, defaults in {
      consent-callback = { memory_size = 256, timeout = 20, reserved_concurrency = null }
      token-refresh    = { memory_size = 256, timeout = 300, reserved_concurrency = null }
      alert-fetcher    = { memory_size = 512, timeout = 300, reserved_concurrency = null }
      ocsf-exporter    = { memory_size = 512, timeout = 120, reserved_concurrency = null }
    } :
    name => merge(defaults, {
      for field, value in var.functions[name] : field => value if value != null && field != "package"
    }) if contains(keys(var.functions), name)
  }
}

resource "aws_lambda_function" "function" {
  #checkov:skip=CKV_AWS_116:No invocation carries a payload a dead-letter queue could replay: API Gateway invokes consent-callback synchronously (the browser gets the answer); the schedules of token-refresh and of the fetcher's dispatch redo all the work on their next run; the fetcher's work items fail over to the work queue's own dead-letter queue (redrive policy). Every failure raises the function's Errors alarm.
  #checkov:skip=CKV_AWS_115:No concurrency is reserved by default (the expression hides it from checkov): a fresh account's quota is 10 concurrent executions and AWS keeps 10 unreserved, so any reservation fails the apply there; var.functions sets one per function once the quota allows. Bursts stay bounded without it: the SQS event source's maximum_concurrency caps the fetcher's work, the API stage's throttling the consent endpoint, and the schedules start token-refresh and the dispatch once per period.
  #checkov:skip=CKV_AWS_117:Reaches only Microsoft's public endpoints and regional AWS APIs; no VPC resource to reach, and a VPC would add NAT gateways for no isolation gain.
  #checkov:skip=CKV_AWS_272:Packages are built by cargo lambda in the operator's pipeline and deployed by this module; no AWS Signer profile is part of this deployment.
  for_each = { for k, f in local.functions : k => f if contains(keys(local.function_names), k) }

  function_name                  = local.function_names[each.key]
  description                    = each.value.description
  role                           = aws_iam_role.function[each.key].arn
  runtime                        = "provided.al2023"
  handler                        = "bootstrap"
  architectures                  = [var.architecture]
  filename                       = var.functions[each.key].package
  source_code_hash               = filebase64sha256(var.functions[each.key].package)
  memory_size                    = local.function_settings[each.key].memory_size
  timeout                        = local.function_settings[each.key].timeout
  reserved_concurrent_executions = local.function_settings[each.key].reserved_concurrency
  kms_key_arn                    = aws_kms_key.this.arn

  environment {
    variables = each.value.environment
  }

  # The exporter is invoked asynchronously (EventBridge): what it fails on lands here (lake.tf).
  dynamic "dead_letter_config" {
    for_each = each.key == "ocsf-exporter" ? aws_sqs_queue.lake_dead_letters[*].arn : []
    content {
      target_arn = dead_letter_config.value
    }
  }

  tracing_config {
    mode = var.tracing_mode
  }

  tags       = local.tags
  depends_on = [aws_cloudwatch_log_group.function, aws_iam_role_policy.function]
}
