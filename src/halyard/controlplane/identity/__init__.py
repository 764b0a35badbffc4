"""The login service: OAuth2 token endpoint, OpenID discovery, JWKS, principals and their credentials."""
