package api

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
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
