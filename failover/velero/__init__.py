"""Velero, as the product sees it: the bucket layout, the backup format, reading and writing buckets.

Import the submodules (``from failover.velero import bucket, layout``); nothing is re-exported here
so call sites say which part of Velero they rely on.
"""
