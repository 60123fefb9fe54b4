"""The environment's shared resources: keys, buckets, image repositories, network, discovery."""
