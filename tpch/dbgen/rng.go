package dbgen

// The random number streams of dbgen: Park & Miller's "minimal standard" LCG
// (x' = 16807·x mod 2^31-1), one stream per column, each consumed a fixed number
// of times per row ("boundary") so that row n of any table can be generated from
// the initial seeds by jumping ahead n·boundary steps (NthElement).

const (
	rngMult    = 16807
	rngModulus = 2147483647
	maxLong    = 0x7FFFFFFF
	dM         = 2147483647.0
)

// Stream indexes, as dbgen's dss.h and shared.h number them.
const (
	sdPMfg = iota
	sdPBrnd
	sdPType
	sdPSize
	sdPCntr
	sdText // text pool pre-generation
	sdPCmnt
	sdPSQty
	sdPSScst
	sdPSCmnt
	sdOSupp
	sdOClrk
	sdOCmnt
	sdOOdate
	sdLQty
	sdLDcnt
	sdLTax
	sdLShip
	sdLSmode
	sdLPkey
	sdLSkey
	sdLSdte
	sdLCdte
	sdLRdte
	sdLRflg
	sdLCmnt
	sdCAddr
	sdCNtrg
	sdCPhne
	sdCAbal
	sdCMseg
	sdCCmnt
	sdSAddr
	sdSNtrg
	sdSPhne
	sdSAbal
	sdSCmnt
	sdPName
	sdOPrio
	sdHVar
	sdOCkey
	sdNCmnt
	sdRCmnt
	sdOLcnt
	sdBBBJnk
	sdBBBType
	sdBBBCmnt
	sdBBBOffset
	numStreams
)

// seedDef is one entry of dbgen's Seed[] table: the table whose rows consume the
// stream, its initial value and how many values each row consumes.
type seedDef struct {
	table    Table
	value    int64
	boundary int64
}

const noTable Table = -1

// seedDefs is dbgen's Seed[] table (DuckDB extension/tpch/dbgen/include/dbgen/dss.h).
var seedDefs = [numStreams]seedDef{
	sdPMfg:      {Part, 1, 1},
	sdPBrnd:     {Part, 46831694, 1},
	sdPType:     {Part, 1841581359, 1},
	sdPSize:     {Part, 1193163244, 1},
	sdPCntr:     {Part, 727633698, 1},
	sdText:      {noTable, 933588178, 1},
	sdPCmnt:     {Part, 804159733, 2},
	sdPSQty:     {PartSupp, 1671059989, suppPerPart},
	sdPSScst:    {PartSupp, 1051288424, suppPerPart},
	sdPSCmnt:    {PartSupp, 1961692154, suppPerPart * 2},
	sdOSupp:     {Orders, 1227283347, 1},
	sdOClrk:     {Orders, 1171034773, 1},
	sdOCmnt:     {Orders, 276090261, 2},
	sdOOdate:    {Orders, 1066728069, 1},
	sdLQty:      {Lineitem, 209208115, oLcntMax},
	sdLDcnt:     {Lineitem, 554590007, oLcntMax},
	sdLTax:      {Lineitem, 721958466, oLcntMax},
	sdLShip:     {Lineitem, 1371272478, oLcntMax},
	sdLSmode:    {Lineitem, 675466456, oLcntMax},
	sdLPkey:     {Lineitem, 1808217256, oLcntMax},
	sdLSkey:     {Lineitem, 2095021727, oLcntMax},
	sdLSdte:     {Lineitem, 1769349045, oLcntMax},
	sdLCdte:     {Lineitem, 904914315, oLcntMax},
	sdLRdte:     {Lineitem, 373135028, oLcntMax},
	sdLRflg:     {Lineitem, 717419739, oLcntMax},
	sdLCmnt:     {Lineitem, 1095462486, oLcntMax * 2},
	sdCAddr:     {Customer, 881155353, 9},
	sdCNtrg:     {Customer, 1489529863, 1},
	sdCPhne:     {Customer, 1521138112, 3},
	sdCAbal:     {Customer, 298370230, 1},
	sdCMseg:     {Customer, 1140279430, 1},
	sdCCmnt:     {Customer, 1335826707, 2},
	sdSAddr:     {Supplier, 706178559, 9},
	sdSNtrg:     {Supplier, 110356601, 1},
	sdSPhne:     {Supplier, 884434366, 3},
	sdSAbal:     {Supplier, 962338209, 1},
	sdSCmnt:     {Supplier, 1341315363, 2},
	sdPName:     {Part, 709314158, 92},
	sdOPrio:     {Orders, 591449447, 1},
	sdHVar:      {Lineitem, 431918286, 1},
	sdOCkey:     {Orders, 851767375, 1},
	sdNCmnt:     {Nation, 606179079, 2},
	sdRCmnt:     {Region, 1500869201, 2},
	sdOLcnt:     {Orders, 1434868289, 1},
	sdBBBJnk:    {Supplier, 263032577, 1},
	sdBBBType:   {Supplier, 753643799, 1},
	sdBBBCmnt:   {Supplier, 202794285, 1},
	sdBBBOffset: {Supplier, 715851524, 1},
}

// stream is one RNG stream with its per-row usage count.
type stream struct {
	value    int64
	usage    int64
	boundary int64
}

// nextRand is dbgen's NextRand.
func nextRand(x int64) int64 { return x * rngMult % rngModulus }

// unifInt is dbgen's UnifInt: a value uniform in [lo, hi], computed in double
// precision as the C code does.
func (s *stream) unifInt(lo, hi int64) int64 {
	return lo + s.scaled(float64(hi-lo+1))
}

// scaled advances the stream and returns value/(2^31-1)·r truncated, UnifInt's
// core. For lo=0, hi=MAX_LONG (the random characters of addresses) TPC's dbgen
// computes the range in 32 bits, which overflows to INT32_MIN, so r is -2^31
// there; the DuckDB dbgen that produced the published answers uses 2^31.
func (s *stream) scaled(r float64) int64 {
	s.value = s.value * rngMult % rngModulus
	s.usage++
	return int64(float64(s.value) / dM * r)
}

// advance jumps n steps ahead (dbgen's NthElement).
func (s *stream) advance(n int64) { s.value = nthElement(n, s.value) }

// nthElement returns the seed after n applications of the generator to x.
func nthElement(n, x int64) int64 {
	if n > 0 && n < int64(len(multPow)) {
		return x * multPow[n] % rngModulus
	}
	mult := int64(rngMult)
	for n > 0 {
		if n%2 != 0 {
			x = mult * x % rngModulus
		}
		n /= 2
		mult = mult * mult % rngModulus
	}
	return x
}

// multPow[k] = 16807^k mod 2^31-1, for the short jumps made at every row end.
var multPow = func() [128]int64 {
	var p [128]int64
	p[0] = 1
	for i := 1; i < len(p); i++ {
		p[i] = p[i-1] * rngMult % rngModulus
	}
	return p
}()

// NextRand exposes one step of the generator for tests and documentation.
func NextRand(x int64) int64 { return nextRand(x) }

// NthElement exposes the jump-ahead for tests and documentation.
func NthElement(n, x int64) int64 { return nthElement(n, x) }
