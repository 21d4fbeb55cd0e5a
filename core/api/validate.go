package api

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// namePattern is a DNS label: the names of hosts, apps and installations.
var namePattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// MaxPort is the highest TCP port number (container_port).
const MaxPort = 65535

func checkName(what, name string) error {
	if !namePattern.MatchString(name) {
		return fmt.Errorf("%s name %q: use 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit", what, name)
	}
	return nil
}

// reservedName is the one name an app or installation cannot take: the
// web UI's create pages live at /ui/apps/new and /ui/installations/new,
// where such an app or installation would have no page of its own.
const reservedName = "new"

// checkNewName is checkName for the name of an app or installation being
// created or pushed.
func checkNewName(what, name string) error {
	if name == reservedName {
		return fmt.Errorf("%s name %q is reserved (the web UI's create page); choose another", what, name)
	}
	return checkName(what, name)
}

// checkText refuses control characters (terminal escapes among them) and
// invalid UTF-8 in free text that people read in terminals and pages.
func checkText(what, text string) error {
	if !utf8.ValidString(text) {
		return fmt.Errorf("%s must be UTF-8 text", what)
	}
	for _, r := range text {
		if unicode.IsControl(r) {
			return fmt.Errorf("%s must not contain control characters (found %U)", what, r)
		}
	}
	return nil
}

// checkEnv validates env variables: the first bad one (in name order) is
// named.
func checkEnv(env map[string]string) error {
	if len(env) > MaxEnvVars {
		return fmt.Errorf("at most %d env variables", MaxEnvVars)
	}
	for _, k := range slices.Sorted(maps.Keys(env)) {
		v := env[k]
		if !envKeyPattern.MatchString(k) || len(v) > MaxEnvValue {
			return fmt.Errorf("env %q: names are letters, digits and _, values at most %d bytes", k, MaxEnvValue)
		}
		if err := checkEnvValue(k, v); err != nil {
			return err
		}
	}
	return nil
}

// checkEnvValue refuses what Docker refuses in an environment value (NUL)
// and what would not survive JSON unchanged (invalid UTF-8).
func checkEnvValue(name, value string) error {
	if strings.ContainsRune(value, 0) {
		return fmt.Errorf("env %q: values must not contain NUL characters", name)
	}
	if !utf8.ValidString(value) {
		return fmt.Errorf("env %q: values must be UTF-8 text", name)
	}
	return nil
}

// problems collects what is wrong with a request, so one 400 names all of it.
type problems []string

func (p *problems) add(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

func (p *problems) addErr(err error) {
	if err != nil {
		*p = append(*p, err.Error())
	}
}

// err joins the problems with "; ", or is nil when there are none.
func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return errors.New(strings.Join(p, "; "))
}
