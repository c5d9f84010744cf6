# Storage (DESIGN.md §5): the app secret, the one DynamoDB table, the alerts bucket. Tenant
# secrets ({prefix}/tenants/{tenant_id}) are created by the functions at consent time.

# The app registration's credentials: {"client_id", "client_secret", "state_key"}. Only the
# secret is created here, without a version: the operator writes its value out of band
# (`aws secretsmanager put-secret-value`, README "Deploy"), so it never enters Terraform state.
resource "aws_secretsmanager_secret" "app" {
  #checkov:skip=CKV2_AWS_57:The value is the Entra app registration's client secret: it is rotated in Entra by the operator, who then writes the new value; a rotation Lambda cannot mint Entra client secrets.
  name                    = "${local.secrets_prefix}/app"
  description             = "${var.name}: the Entra app's client_id, client_secret and the consent state-signing key. Written by the operator."
  kms_key_id              = aws_kms_key.this.arn
  recovery_window_in_days = var.secret_recovery_window_days
  tags                    = local.tags
}

# Tenant records (pk TENANT#{id}, sk META), fetch cursors (sk CURSOR#{api}) and used consent
# nonces (pk NONCE#{nonce}, expiring through `ttl`), the delivery index (pk INDEX#…):
# shared/src/adapters/aws/.
resource "aws_dynamodb_table" "state" {
  name                        = var.name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "pk"
  range_key                   = "sk"
  deletion_protection_enabled = var.table_deletion_protection

  attribute {
    name = "pk"
    type = "S"
  }

  attribute {
    name = "sk"
    type = "S"
  }

  attribute {
    name = "status"
    type = "S"
  }

  # Tenant items by status (only tenant items carry `status`, so the index holds nothing else):
  # a scheduled round and the token refresh Query the active tenants instead of scanning the
  # table's cursors, nonces and delivery index (shared/src/adapters/aws/dynamodb.rs STATUS_INDEX).
  global_secondary_index {
    name               = "by-status"
    hash_key           = "status"
    range_key          = "pk"
    projection_type    = "INCLUDE"
    non_key_attributes = ["record"]
  }

  ttl {
    attribute_name = "ttl"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.this.arn
  }

  tags = local.tags
}

# Alerts as NDJSON.gz: alerts/tenant={id}/date=YYYY-MM-DD/{object}.ndjson.gz. A retried delivery
# overwrites an object with the same content, so noncurrent versions are short-lived noise.
resource "aws_s3_bucket" "alerts" {
  #checkov:skip=CKV_AWS_18:Server access logs would need a second bucket with its own lifecycle; reads and writes of alert objects are audited with CloudTrail S3 data events, which the account's organization trail owns.
  #checkov:skip=CKV_AWS_144:Single-region product: cross-region replication (a second bucket, a replication role and key) is the operator's disaster-recovery choice, and the SIEM keeps its own copy of every alert.
  #checkov:skip=CKV2_AWS_62:Event notifications are opt-in (alert_notifications, queue.tf): S3 keeps one notification configuration per bucket, and an MSSP whose SIEM already picks up the objects another way (its own queue, EventBridge) must not have it taken over by default.
  bucket = local.bucket_name
  tags   = local.tags
}

resource "aws_s3_bucket_versioning" "alerts" {
  bucket = aws_s3_bucket.alerts.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "alerts" {
  bucket = aws_s3_bucket.alerts.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.this.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "alerts" {
  bucket                  = aws_s3_bucket.alerts.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "alerts" {
  bucket = aws_s3_bucket.alerts.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_policy" "alerts" {
  bucket = aws_s3_bucket.alerts.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "TLSOnly"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = [aws_s3_bucket.alerts.arn, "${aws_s3_bucket.alerts.arn}/*"]
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
    ]
  })

  # A bucket policy written before the public access block could be refused as public.
  depends_on = [aws_s3_bucket_public_access_block.alerts]
}

resource "aws_s3_bucket_lifecycle_configuration" "alerts" {
  bucket = aws_s3_bucket.alerts.id

  rule {
    # The whole bucket: it holds only alert objects.
    id     = "alerts"
    status = "Enabled"

    filter {}

    transition {
      days          = var.alerts_transition_days
      storage_class = var.alerts_transition_storage_class
    }

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_expiration_days
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  # Lifecycle rules on a versioned bucket need versioning in place first.
  depends_on = [aws_s3_bucket_versioning.alerts]
}
