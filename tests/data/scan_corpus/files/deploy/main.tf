provider "aws" {
  region     = "eu-west-1"
  access_key = "AKIA4SGNVU2CTHSH6AMZ"
  secret_key = "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"
}

variable "db_password" {
  type      = string
  sensitive = true
}

resource "aws_db_instance" "main" {
  identifier        = "orders"
  engine            = "postgres"
  username          = "orders"
  password          = var.db_password
  instance_class    = "db.t3.medium"
  allocated_storage = 50
}

resource "aws_iam_access_key" "ci" {
  user = aws_iam_user.ci.name
}

output "secret" {
  value     = aws_iam_access_key.ci.secret
  sensitive = true
}

locals {
  datadog_api_key = "c97045e851a0584a6b13dfa88f7ed805"
  etag            = "1c5acfa7665cc792200cb32c39f4bdde"
  ami_checksum    = "416f68778c8aa9f34afa9e29b147239f0798ec1cbad4f6ece325fd62deab6468"
}
