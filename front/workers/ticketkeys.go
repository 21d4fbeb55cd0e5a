package workers

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"time"
)

// TLS session tickets: a client that resumes its session may reach any
// worker, so every worker must decrypt every worker's tickets (NGINX's
// workers share the keys their master made). The master gives each worker
// one random secret, and each worker derives the same keys from it: a new
// key every ticketKeyPeriod, the previous ones kept for decryption as long
// as Go's own rotation keeps them (tickets live at most 7 days).
const (
	ticketKeyPeriod  = 24 * time.Hour
	ticketKeysKept   = 7
	ticketSecretSize = 32
)

// TicketKeys returns the session ticket keys for now, newest (the one
// that encrypts) first, for tls.Config.SetSessionTicketKeys.
func (in *Inherited) TicketKeys(now time.Time) [][32]byte {
	return ticketKeys(in.ticketSecret[:], now)
}

func ticketKeys(secret []byte, now time.Time) [][32]byte {
	period := now.Unix() / int64(ticketKeyPeriod/time.Second)
	keys := make([][32]byte, ticketKeysKept)
	for i := range keys {
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte("potluck-front session ticket key\x00"))
		_ = binary.Write(mac, binary.BigEndian, period-int64(i))
		copy(keys[i][:], mac.Sum(nil))
	}
	return keys
}
