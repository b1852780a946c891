package auth

import (
	"context"
	"strings"

	"github.com/gatehouse-auth/gatehouse/internal/device"
	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// noveltyWindow is how many of an account's latest sign-ins a new one is
// compared with (within --event-retention: older events are gone).
const noveltyWindow = 200

// The details a login_succeeded event carries.
const (
	DetailFirstSignIn = "first sign-in"
	DetailNewDevice   = "new device"
	DetailNewNetwork  = "new network"
)

// loginNovelty says what is new about a sign-in compared with the account's
// recent ones: the first sign-in, a device (browser, OS and kind, ignoring
// version updates) or a network (IPv4 /24, IPv6 /48) not seen before, or
// nothing. It reads the account's login_succeeded events, which the store
// indexes by user, and stops once both are known. A failed read annotates
// nothing: the sign-in is not refused over its annotation.
func (s *Service) loginNovelty(ctx context.Context, userID string, m Meta) string {
	prior, err := s.events.ListEvents(ctx, store.EventFilter{UserID: userID, Type: EventLoginSucceeded, Limit: noveltyWindow})
	if err != nil {
		return ""
	}
	if len(prior) == 0 {
		return DetailFirstSignIn
	}
	m = m.clean()
	dev, network := device.Parse(m.UserAgent).Key(), device.Network(m.IP)
	knownDevice, knownNetwork := false, network == ""
	for _, e := range prior {
		// An unrecognised agent (an API client, curl) is compared as is.
		if !knownDevice {
			if d := device.Parse(e.UserAgent).Key(); d == dev && (dev != "" || e.UserAgent == m.UserAgent) {
				knownDevice = true
			}
		}
		if !knownNetwork && device.Network(e.IP) == network {
			knownNetwork = true
		}
		if knownDevice && knownNetwork {
			break
		}
	}
	var what []string
	if !knownDevice {
		what = append(what, DetailNewDevice)
	}
	if !knownNetwork {
		what = append(what, DetailNewNetwork)
	}
	return strings.Join(what, ", ")
}
