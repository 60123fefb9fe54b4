"""Deploys approved model versions through the registry's stages: update, verify, smoke-test, approve, clean up."""
