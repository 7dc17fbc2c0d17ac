package auth

// The auth service's Redis keys: its limits, counted per e-mail address (as
// normalised before they get here) and per client address. The revocation key,
// which the gateway reads too, is tokens.RevokedCredentialKey.

// resendCooldownKey marks that a code was sent recently to email (a
// verification or a reset code, or the notice that the account exists).
func resendCooldownKey(email string) string { return "auth:resend:" + email }

// mailsSentKey counts the e-mails anonymous requests had sent to email in the
// current day-long window (registrations, resends, reset requests).
func mailsSentKey(email string) string { return "auth:mails:" + email }

// codeGuessesKey counts the wrong verification and reset codes entered for
// email in the current day-long window; codeGuessesClientKey counts them per
// client address.
func codeGuessesKey(email string) string { return "auth:guesses:" + email }

// codeGuessesClientKey counts the wrong codes one client address entered.
func codeGuessesClientKey(clientIP string) string { return "auth:guesses-client:" + clientIP }

// loginFailuresKey counts the wrong passwords entered for email (at login
// and account deletion) in the current window; loginFailuresClientKey counts
// them per client address.
func loginFailuresKey(email string) string { return "auth:login-failures:" + email }

// loginFailuresClientKey counts the wrong passwords one client address entered.
func loginFailuresClientKey(clientIP string) string { return "auth:login-failures-client:" + clientIP }

// codeBackoffKey exists while the next code guess for email must wait.
func codeBackoffKey(email string) string { return "auth:guess-wait:" + email }
