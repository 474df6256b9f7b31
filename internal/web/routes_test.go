package web

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestSlashRedirectKeepsMethodAndQuery(t *testing.T) {
	tests := []struct {
		method, target, wantLocation string
	}{
		{http.MethodGet, "/login", "/login/"},
		{http.MethodGet, "/login?next=%2Faccount", "/login/?next=%2Faccount"},
		{http.MethodPost, "/login", "/login/"},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		redirectTo("/login/").ServeHTTP(rec, httptest.NewRequest(tt.method, tt.target, nil))
		if rec.Code != http.StatusPermanentRedirect {
			t.Errorf("%s %s: status got %d, want 308", tt.method, tt.target, rec.Code)
		}
		if got := rec.Header().Get("Location"); got != tt.wantLocation {
			t.Errorf("%s %s: Location got %q, want %q", tt.method, tt.target, got, tt.wantLocation)
		}
	}
}
