package session

import (
	"sync"

	useragent "github.com/medama-io/go-useragent"
)

// Device is what a user agent says about the device a session was started
// on. Empty fields are unknown.
type Device struct {
	// Browser is the browser's name, such as "Chrome" or "Firefox".
	Browser string
	// Version is the browser's major version.
	Version string
	// OS is the operating system, such as "Windows" or "Android".
	OS string
	// Kind is "Desktop", "Mobile", "Tablet", "TV" or "Bot".
	Kind string
}

// String is an English one-line summary, for the command-line tools:
// "Firefox 133 on Linux (Desktop)", or "unknown device".
func (d Device) String() string {
	s := d.Browser
	if s != "" && d.Version != "" {
		s += " " + d.Version
	}
	if d.OS != "" {
		if s != "" {
			s += " on "
		}
		s += d.OS
	}
	if s == "" {
		return "unknown device"
	}
	if d.Kind != "" {
		s += " (" + d.Kind + ")"
	}
	return s
}

// devices parses user agents with medama-io/go-useragent. Its trie takes
// about 0.2 s and 6 MiB to build, so it is built on first use: a process
// that never shows a device (most CLI runs) never pays for it.
type devices struct {
	parser func() *useragent.Parser
}

func newDevices() devices { return devices{parser: sync.OnceValue(useragent.NewParser)} }

func (d devices) describe(ua string) Device {
	if ua == "" || d.parser == nil {
		return Device{}
	}
	p := d.parser().Parse(ua)
	dev := Device{Browser: string(p.Browser()), OS: string(p.OS()), Kind: string(p.Device())}
	if dev.Browser != "" {
		dev.Version = p.BrowserVersionMajor()
	}
	return dev
}
