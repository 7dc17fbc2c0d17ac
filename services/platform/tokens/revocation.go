package tokens

// RevokedCredentialKey is the Redis key that exists while tokens carrying the
// credential id may still be unexpired: auth sets it when a password is reset
// or an account deleted, the gateway refuses such tokens. Credential ids are
// random, so deployments sharing one Redis never collide.
func RevokedCredentialKey(credentialID string) string {
	return "auth:revoked-credential:" + credentialID
}
