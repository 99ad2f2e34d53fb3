package sample

import (
	"math/rand/v2"
	"strconv"
)

var (
	firstNames = []string{"Ada", "Boris", "Chidi", "Dana", "Emeka", "Farah", "Goran", "Hana", "Ines", "Jonas", "Kenji", "Lena", "Mateo", "Nadia", "Omar", "Priya"}
	lastNames  = []string{"Quill", "Reyes", "Sato", "Tanaka", "Ueda", "Varga", "Weber", "Xu", "Yilmaz", "Zeller", "Okafor", "Novak", "Moreau", "Lindqvist"}
	cities     = []string{"Lisbon", "Lagos", "Osaka", "Quito", "Tallinn", "Hanoi", "Perth", "Nairobi", "Porto", "Oslo", "Cusco", "Dakar"}
	plans      = []string{"free", "basic", "pro", "team", "enterprise"}
	vocabulary = []string{"backup", "restore", "snapshot", "replica", "shard", "parity", "ledger", "invoice", "cart", "order", "refund", "coupon",
		"session", "cookie", "latency", "quota", "region", "bucket", "cursor", "stream", "window", "record", "index", "cache"}
)

// Doc appends document id at revision rev to b and returns it: one JSON
// object, no newline. The bytes depend only on the seed, id and rev.
func (g *Generator) Doc(b []byte, id uint64, rev uint32) []byte {
	// The revision is the stream's sequence, the id and seed its seed: one
	// document's revisions differ in every field but the key.
	rng := rand.New(rand.NewPCG(g.o.Seed*0x9e3779b97f4a7c15^id, uint64(rev)))
	pick := func(list []string) string { return list[rng.IntN(len(list))] }
	b = append(b, `{"_id":"`...)
	b = append(b, Key(id)...)
	b = append(b, `","rev":`...)
	b = strconv.AppendUint(b, uint64(rev), 10)
	b = append(b, `,"name":"`...)
	b = append(b, pick(firstNames)...)
	b = append(b, ' ')
	b = append(b, pick(lastNames)...)
	b = append(b, `","city":"`...)
	b = append(b, pick(cities)...)
	b = append(b, `","plan":"`...)
	b = append(b, pick(plans)...)
	b = append(b, `","score":`...)
	b = strconv.AppendInt(b, int64(rng.IntN(1000)), 10)
	b = append(b, `,"balance":`...)
	b = strconv.AppendInt(b, int64(rng.IntN(100000)), 10)
	b = append(b, '.')
	c := rng.IntN(100)
	b = append(b, byte('0'+c/10), byte('0'+c%10))
	b = append(b, `,"tags":[`...)
	for i, n := 0, rng.IntN(4); i < n; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, pick(vocabulary)...)
		b = append(b, '"')
	}
	b = append(b, `],"notes":"`...)
	for i, n := 0, 30+rng.IntN(90); i < n; i++ {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, pick(vocabulary)...)
	}
	return append(b, `"}`...)
}
