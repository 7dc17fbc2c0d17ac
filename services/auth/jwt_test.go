package auth_test

import (
	"encoding/base64"
	"strings"
)

func jsonSegment(token string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.SplitN(token, ".", 2)[0])
}
