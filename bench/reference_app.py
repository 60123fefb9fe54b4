"""The yardstick for the synth benchmark: the smallest useful CDK app (one stack, one bucket, no packs)."""

import aws_cdk as cdk
from aws_cdk import aws_s3 as s3

app = cdk.App()
stack = cdk.Stack(app, "Reference", env=cdk.Environment(account="111111111111", region="eu-west-1"))
s3.Bucket(stack, "Bucket")
app.synth()
