package session

import "testing"

func TestDeviceSummarisesTheUserAgent(t *testing.T) {
	t.Parallel()
	d := newDevices()
	tests := []struct {
		name, ua string
		want     Device
		summary  string
	}{
		{
			"Firefox on Linux",
			"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
			Device{Browser: "Firefox", Version: "133", OS: "Linux", Kind: "Desktop"},
			"Firefox 133 on Linux (Desktop)",
		},
		{
			"Safari on an iPhone",
			"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
			Device{Browser: "Safari", Version: "17", OS: "iOS", Kind: "Mobile"},
			"Safari 17 on iOS (Mobile)",
		},
		{"no user agent", "", Device{}, "unknown device"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := d.describe(tt.ua)
			if got != tt.want {
				t.Errorf("describe: got %+v, want %+v", got, tt.want)
			}
			if s := got.String(); s != tt.summary {
				t.Errorf("String: got %q, want %q", s, tt.summary)
			}
		})
	}
	if got, want := (Device{OS: "Windows"}).String(), "Windows"; got != want {
		t.Errorf("String of an OS alone: got %q, want %q", got, want)
	}
}
