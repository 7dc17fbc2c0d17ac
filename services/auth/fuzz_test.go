package auth

import (
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/kshop/kshop/services/platform/apitest"
	"github.com/kshop/kshop/services/platform/httpx"
)

// Each request decoder of the auth API, fed anything: it answers in the
// contract or hands the use case a request within the contract's limits.
// Hostile seeds are committed under testdata/fuzz/<target>/.

func checkEmail(t *testing.T, email string) {
	t.Helper()
	if email == "" || utf8.RuneCountInString(email) > 255 || !strings.Contains(email, "@") || strings.ContainsRune(email, 0) {
		t.Fatalf("accepted email %q", email)
	}
}

func checkPassword(t *testing.T, password string, minChars int) {
	t.Helper()
	if len(password) > maxPasswordBytes || utf8.RuneCountInString(password) < minChars || strings.ContainsRune(password, 0) {
		t.Fatalf("accepted password %q", password)
	}
}

func FuzzRegisterBody(f *testing.F) {
	f.Add([]byte(`{"email":"a@kshop.dev","password":"password1"}`))
	decoder := apitest.NewDecoder(http.MethodPost, "/register", bindRegister)
	f.Fuzz(func(t *testing.T, body []byte) {
		if req, ok := decoder.Decode(t, "/register", body); ok {
			checkEmail(t, req.Email)
			checkPassword(t, req.Password, 8)
		}
	})
}

func FuzzLoginBody(f *testing.F) {
	f.Add([]byte(`{"email":"a@kshop.dev","password":"password1"}`))
	decoder := apitest.NewDecoder(http.MethodPost, "/login", bindLogin)
	f.Fuzz(func(t *testing.T, body []byte) {
		if req, ok := decoder.Decode(t, "/login", body); ok {
			checkEmail(t, req.Email)
			checkPassword(t, req.Password, 1)
		}
	})
}

func FuzzVerifyBody(f *testing.F) {
	f.Add([]byte(`{"email":"a@kshop.dev","verification_token":"123456"}`))
	decoder := apitest.NewDecoder(http.MethodPost, "/verify", httpx.Bind[verifyRequest])
	f.Fuzz(func(t *testing.T, body []byte) {
		if req, ok := decoder.Decode(t, "/verify", body); ok {
			checkEmail(t, req.Email)
			if len(req.VerificationToken) != 6 || strings.Trim(req.VerificationToken, "0123456789") != "" {
				t.Fatalf("accepted code %q", req.VerificationToken)
			}
		}
	})
}

func FuzzResendBody(f *testing.F) {
	f.Add([]byte(`{"email":"a@kshop.dev"}`))
	decoder := apitest.NewDecoder(http.MethodPost, "/resend-verification", httpx.Bind[resendRequest])
	f.Fuzz(func(t *testing.T, body []byte) {
		if req, ok := decoder.Decode(t, "/resend-verification", body); ok {
			checkEmail(t, req.Email)
		}
	})
}

func FuzzResetPasswordBody(f *testing.F) {
	f.Add([]byte(`{"email":"a@kshop.dev","reset_token":"123456","password":"password1"}`))
	f.Add([]byte(`{"email":"a@kshop.dev","reset_token":"+00000","password":"password1"}`))
	f.Add([]byte(`{"email":"a@kshop.dev","reset_token":"123456","password":"` + strings.Repeat("€", 25) + `"}`))
	decoder := apitest.NewDecoder(http.MethodPost, "/reset-password", bindResetPassword)
	f.Fuzz(func(t *testing.T, body []byte) {
		if req, ok := decoder.Decode(t, "/reset-password", body); ok {
			checkEmail(t, req.Email)
			checkPassword(t, req.Password, 8)
			if len(req.ResetToken) != 6 || strings.Trim(req.ResetToken, "0123456789") != "" {
				t.Fatalf("accepted code %q", req.ResetToken)
			}
		}
	})
}
