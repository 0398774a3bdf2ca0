"""Every object under a prefix of an S3 bucket, with its server-side encryption,
as boto3 (an independent S3 client) reads it: JSON {key: sse or null}.

    s3_objects.py ENDPOINT BUCKET PREFIX

Credentials from the usual AWS_* variables.
"""

import json
import sys

import boto3


def main():
    endpoint, bucket, prefix = sys.argv[1:4]
    s3 = boto3.client("s3", endpoint_url=endpoint)
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            head = s3.head_object(Bucket=bucket, Key=obj["Key"])
            out[obj["Key"]] = head.get("ServerSideEncryption")
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
