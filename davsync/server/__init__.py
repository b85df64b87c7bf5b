"""The self-hosted side: Radicale with the provisioning endpoint and device-password auth.

Never imported by the client code paths.
"""
