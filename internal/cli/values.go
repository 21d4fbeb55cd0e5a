package cli

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"potluck/internal/human"
)

// StringList is a repeatable or comma-separated string flag.
type StringList []string

func (s *StringList) String() string { return strings.Join(*s, ",") }

// Set appends the comma-separated values.
func (s *StringList) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*s = append(*s, part)
		}
	}
	return nil
}

// Repeated is a repeatable string flag whose values are kept whole (an
// environment variable's value may itself hold commas).
type Repeated []string

func (r *Repeated) String() string { return strings.Join(*r, ",") }

// Set appends v.
func (r *Repeated) Set(v string) error { *r = append(*r, v); return nil }

// Size is a byte size flag: 512MiB, 1GiB, 2G, 100M, or plain bytes.
type Size int64

func (s *Size) String() string { return fmt.Sprint(int64(*s)) }

// Set parses a size (see human.ParseSize; a bare number is bytes).
func (s *Size) Set(v string) error {
	n, err := human.ParseSize(v, 1)
	if err != nil {
		return err
	}
	*s = Size(n)
	return nil
}

// OptionalInt is an int flag that knows whether it was given (on the command
// line or by its environment twin), for "change only what was asked".
type OptionalInt struct {
	Value int
	Given bool
}

func (o *OptionalInt) String() string {
	if o == nil || !o.Given {
		return ""
	}
	return strconv.Itoa(o.Value)
}

// Set parses a decimal integer.
func (o *OptionalInt) Set(v string) error {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return fmt.Errorf("%q is not a whole number", v)
	}
	o.Value, o.Given = n, true
	return nil
}

// Ptr is the value, or nil when the flag was not given.
func (o *OptionalInt) Ptr() *int {
	if !o.Given {
		return nil
	}
	v := o.Value
	return &v
}

// OptionalString is a string flag that knows whether it was given, so an
// empty value (--lender "") can clear what an absent flag keeps.
type OptionalString struct {
	Value string
	Given bool
}

func (o *OptionalString) String() string {
	if o == nil {
		return ""
	}
	return o.Value
}

// Set takes v as it is.
func (o *OptionalString) Set(v string) error {
	o.Value, o.Given = v, true
	return nil
}

// Ptr is the value, or nil when the flag was not given.
func (o *OptionalString) Ptr() *string {
	if !o.Given {
		return nil
	}
	v := o.Value
	return &v
}

// Duration is a duration flag that also takes days ("7d", "1d12h"), which
// token lifetimes are usually counted in; otherwise as time.ParseDuration.
type Duration time.Duration

func (d *Duration) String() string { return time.Duration(*d).String() }

// Set parses a duration with an optional leading days part.
func (d *Duration) Set(v string) error {
	s := strings.TrimSpace(v)
	var days int64
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.ParseInt(s[:i], 10, 64)
		if err != nil || n < 0 || n > 100_000 {
			return fmt.Errorf("%q: want a duration such as 90s, 24h or 7d", v)
		}
		days, s = n, s[i+1:]
	}
	var rest time.Duration
	if s != "" {
		var err error
		if rest, err = time.ParseDuration(s); err != nil {
			return fmt.Errorf("%q: want a duration such as 90s, 24h or 7d", v)
		}
	}
	*d = Duration(time.Duration(days)*24*time.Hour + rest)
	return nil
}
