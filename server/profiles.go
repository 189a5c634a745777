package server

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/extauthz/extauthz/profiles"
)

// openProfiles loads --profiles-file and watches it like a secret file
// (reload.go): a change is applied once it is stable, a bad edit keeps the
// last good profiles and is logged once until the files change, and both
// results are counted in extauthz_profile_reloads_total, exported at 0 from
// the start.
func (s *Server) openProfiles() error {
	reloads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "extauthz", Name: "profile_reloads_total",
		Help: "Reloads of --profiles-file by result (ok, error); on error the last good profiles stay in force.",
	}, []string{"result"})
	if err := s.reg.Register(reloads); err != nil {
		return err
	}
	reloads.WithLabelValues("ok")
	reloads.WithLabelValues("error")
	if s.cfg.ProfilesFile == "" {
		return nil
	}
	path := s.cfg.ProfilesFile
	r, err := loadReloadable(func([][]byte) (*profiles.Set, error) {
		return profiles.Load(path, s.cfg.Policy)
	}, watchedFile{flag: "--profiles-file", path: path})
	if err != nil {
		return err
	}
	f := watch(s, r, "profiles reloaded", "profiles reload failed; keeping the last good profiles")
	f.apply = func(set *profiles.Set, ev *zerolog.Event) {
		s.setProfiles(set)
		ev.Strs("profiles", set.Names())
	}
	f.count = func(ok bool) {
		if ok {
			reloads.WithLabelValues("ok").Inc()
		} else {
			reloads.WithLabelValues("error").Inc()
		}
	}
	s.profiles = r
	s.setProfiles(r.current())
	return nil
}

// setProfiles puts a loaded set of profiles in force, for every decision
// from now on.
func (s *Server) setProfiles(set *profiles.Set) {
	s.core.SetProfiles(set)
}

// profileSummary names the loaded profiles, for check-config, and the
// headers besides authorization a proxy must pass to the HTTP endpoints
// for them.
func (s *Server) profileSummary() string {
	set := s.core.Profiles()
	if set == nil {
		return "none"
	}
	out := strings.Join(set.Names(), ",")
	if h := s.core.ProfileHeaders(); len(h) > 0 {
		out += " (a proxy passes their capability headers: authorization," + strings.Join(h, ",") + ")"
	}
	return out
}
