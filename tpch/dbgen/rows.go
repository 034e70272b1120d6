package dbgen

import (
	"strconv"
	"unsafe"
)

// rowGen holds the random streams of one Scan and generates rows of one driver
// table (and its child), mirroring DuckDB's GenerateXxx functions in dbgen.cpp.
type rowGen struct {
	g       *Generator
	driver  Table
	want    [numTables]bool
	s       [numStreams]stream
	streams []int // the streams this driver's rows consume (row_start/row_stop)
	out     [numTables]*Batch
	perm    []int
	scratch []byte
}

func newRowGen(g *Generator, driver Table, want [numTables]bool) *rowGen {
	rg := &rowGen{g: g, driver: driver, want: want}
	child := noTable
	switch driver {
	case Part:
		child = PartSupp
	case Orders:
		child = Lineitem
	}
	for i, d := range seedDefs {
		rg.s[i] = stream{value: d.value, boundary: d.boundary}
		if d.table == driver || (child != noTable && d.table == child) {
			rg.streams = append(rg.streams, i)
		}
	}
	rg.perm = make([]int, len(g.d.colors.members))
	return rg
}

// skip jumps the streams past n driver rows (DuckDB's sd_xxx functions).
func (rg *rowGen) skip(n int64) {
	if n == 0 {
		return
	}
	for _, i := range rg.streams {
		rg.s[i].advance(n * rg.s[i].boundary)
	}
}

func (rg *rowGen) rowStart() {
	for _, i := range rg.streams {
		rg.s[i].usage = 0
	}
}

// rowStop advances every stream to its row boundary, so the next row starts
// where dbgen's would whatever this row consumed.
func (rg *rowGen) rowStop() {
	for _, i := range rg.streams {
		s := &rg.s[i]
		if k := s.boundary - s.usage; k > 0 {
			s.advance(k)
		}
	}
}

func (rg *rowGen) startBatch(n int) {
	rg.out = [numTables]*Batch{}
	for t := range rg.want {
		if rg.want[t] {
			c := n
			switch Table(t) {
			case PartSupp:
				c = n * suppPerPart
			case Lineitem:
				c = n * 4
			}
			rg.out[t] = newBatch(Table(t), c)
		}
	}
}

func (rg *rowGen) gen(i int64) {
	switch rg.driver {
	case Orders:
		rg.orderLine(i)
	case Part:
		rg.partPartSupp(i)
	case Supplier:
		rg.supplier(i)
	case Customer:
		rg.customer(i)
	case Nation:
		rg.nation(i)
	default:
		rg.region(i)
	}
}

func (b *Batch) ints(col int, v int64)  { b.Cols[col].Ints = append(b.Cols[col].Ints, v) }
func (b *Batch) strs(col int, v string) { b.Cols[col].Strs = append(b.Cols[col].Strs, v) }
func strLen(avg int) (int64, int64) {
	a := float64(avg)
	return int64(a * vStrLow), int64(a * vStrHigh)
}
func dateOf(raw int64) int64          { return raw - startDate + unixEpochOffset }
func retailPrice(partKey int64) int64 { return 90000 + (partKey/10)%20001 + (partKey%1000)*100 }
func mkSparse(i int64) int64          { return ((i >> 3) << 5) | (i & 7) }
func tagged(tag string, v int64, width int) string {
	var buf [32]byte
	b := append(buf[:0], tag...)
	d := strconv.AppendInt(nil, v, 10)
	for k := len(d); k < width; k++ {
		b = append(b, '0')
	}
	return string(append(b, d...))
}

func (rg *rowGen) pick(d *dist, s int) string {
	j := rg.s[s].unifInt(1, d.max())
	i := 0
	for d.weights[i] < j {
		i++
	}
	return d.members[i]
}

func (rg *rowGen) text(avg int, s int) string {
	lo, hi := strLen(avg)
	return rg.g.pool.text(lo, hi, &rg.s[s])
}

// partSuppBridge is dbgen's PART_SUPP_BRIDGE: the supp-th supplier of a part.
func (rg *rowGen) partSuppBridge(partKey, supp int64) int64 {
	n := rg.g.base[Supplier] * rg.g.scale
	return (partKey+supp*(n/suppPerPart+(partKey-1)/n))%n + 1
}

const alphaNum = "0123456789abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ,"

// alnum is dbgen's tpch_a_rnd / AppendRandomAlphaNumeric (addresses).
func (rg *rowGen) alnum(avg int, s int) string {
	lo, hi := strLen(avg)
	st := &rg.s[s]
	n := st.unifInt(lo, hi)
	b := make([]byte, n)
	var ci int64
	for i := int64(0); i < n; i++ {
		if i%5 == 0 {
			ci = st.scaled(rg.g.alnumRange) // UnifInt(0, MAX_LONG), see scaled
		}
		b[i] = alphaNum[ci&077]
		ci >>= 6
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

func (rg *rowGen) phone(nation int64, s int) string {
	st := &rg.s[s]
	a := st.unifInt(100, 999)
	e := st.unifInt(100, 999)
	n := st.unifInt(1000, 9999)
	b := make([]byte, 0, 15)
	c := 10 + nation%nationsMax
	b = append(b, byte('0'+c/10), byte('0'+c%10), '-')
	b = strconv.AppendInt(b, a, 10)
	b = append(b, '-')
	b = strconv.AppendInt(b, e, 10)
	b = append(b, '-')
	b = strconv.AppendInt(b, n, 10)
	return unsafe.String(unsafe.SliceData(b), len(b))
}

var oneChar = [256]string{'N': "N", 'R': "R", 'A': "A", 'F': "F", 'O': "O", 'P': "P"}

func (rg *rowGen) orderLine(i int64) {
	g := rg.g
	wantO, wantL := rg.want[Orders], rg.want[Lineitem]
	orderKey := mkSparse(i)
	custMax := g.base[Customer] * g.scale
	custKey := rg.s[sdOCkey].unifInt(1, custMax)
	delta := int64(1)
	for custKey%custMortality == 0 {
		custKey = min(custKey+delta, custMax)
		delta = -delta
	}
	orderDate := rg.s[sdOOdate].unifInt(startDate, startDate+totDate-(lSdteMax+lRdteMax)-1)
	prio := rg.pick(g.d.oPrio, sdOPrio)
	clerk := rg.s[sdOClrk].unifInt(1, max(g.scale*oClrkScl, oClrkScl))
	var comment string
	if wantO {
		comment = rg.text(49, sdOCmnt)
	}
	lines := rg.s[sdOLcnt].unifInt(1, oLcntMax)
	partMax := g.base[Part] * g.scale
	var total, closed int64
	lb := rg.out[Lineitem]
	for ln := int64(0); ln < lines; ln++ {
		qty := rg.s[sdLQty].unifInt(1, 50)
		disc := rg.s[sdLDcnt].unifInt(0, 10)
		tax := rg.s[sdLTax].unifInt(0, 8)
		instruct := rg.pick(g.d.instruct, sdLShip)
		mode := rg.pick(g.d.smode, sdLSmode)
		var lcomment string
		if wantL {
			lcomment = rg.text(27, sdLCmnt)
		}
		partKey := rg.s[sdLPkey].unifInt(1, partMax)
		supp := rg.s[sdLSkey].unifInt(0, 3)
		suppKey := rg.partSuppBridge(partKey, supp)
		qty *= 100
		eprice := retailPrice(partKey) * qty / 100
		total += ((eprice * (100 - disc)) / 100) * (100 + tax) / 100
		ship := rg.s[sdLSdte].unifInt(1, lSdteMax) + orderDate
		commit := rg.s[sdLCdte].unifInt(30, 90) + orderDate
		receipt := rg.s[sdLRdte].unifInt(1, lRdteMax) + ship
		rflag := "N"
		if receipt <= currentDateRaw {
			rflag = rg.pick(g.d.rflag, sdLRflg)
		}
		status := "O"
		if ship <= currentDateRaw {
			closed++
			status = "F"
		}
		if wantL {
			lb.ints(0, orderKey)
			lb.ints(1, partKey)
			lb.ints(2, suppKey)
			lb.ints(3, ln+1)
			lb.ints(4, qty)
			lb.ints(5, eprice)
			lb.ints(6, disc)
			lb.ints(7, tax)
			lb.strs(8, rflag)
			lb.strs(9, status)
			lb.ints(10, dateOf(ship))
			lb.ints(11, dateOf(commit))
			lb.ints(12, dateOf(receipt))
			lb.strs(13, instruct)
			lb.strs(14, mode)
			lb.strs(15, lcomment)
			lb.Len++
		}
	}
	if !wantO {
		return
	}
	status := byte('O')
	if closed > 0 {
		status = 'P'
	}
	if closed == lines {
		status = 'F'
	}
	ob := rg.out[Orders]
	ob.ints(0, orderKey)
	ob.ints(1, custKey)
	ob.strs(2, oneChar[status])
	ob.ints(3, total)
	ob.ints(4, dateOf(orderDate))
	ob.strs(5, prio)
	ob.strs(6, tagged("Clerk#", clerk, 9))
	ob.ints(7, 0)
	ob.strs(8, comment)
	ob.Len++
}

func (rg *rowGen) supplier(i int64) {
	g := rg.g
	b := rg.out[Supplier]
	b.ints(0, i)
	b.strs(1, tagged("Supplier#", i, 9))
	b.strs(2, rg.alnum(25, sdSAddr))
	nation := rg.s[sdSNtrg].unifInt(0, int64(len(g.d.nations.members))-1)
	b.ints(3, nation)
	b.strs(4, rg.phone(nation, sdSPhne))
	b.ints(5, rg.s[sdSAbal].unifInt(-99999, 999999))
	src := rg.text(63, sdSCmnt)
	// Some supplier comments carry "Customer ... Complaints/Recommends" (Q16),
	// written over a copy of the pool text.
	n := int64(len(src))
	badPress := rg.s[sdBBBCmnt].unifInt(1, 10000)
	typ := rg.s[sdBBBType].unifInt(0, 100)
	noise := rg.s[sdBBBJnk].unifInt(0, n-bbbCmntLen)
	off := rg.s[sdBBBOffset].unifInt(0, n-(bbbCmntLen+noise))
	comment := src
	if badPress <= sCmntBBB {
		c := []byte(src)
		copy(c[off:], "Customer ")
		if typ < bbbDeadbeats {
			copy(c[off+9+noise:], "Complaints")
		} else {
			copy(c[off+9+noise:], "Recommends")
		}
		comment = string(c)
	}
	b.strs(6, comment)
	b.Len++
}

func (rg *rowGen) customer(i int64) {
	g := rg.g
	b := rg.out[Customer]
	b.ints(0, i)
	b.strs(1, tagged("Customer#", i, 9))
	b.strs(2, rg.alnum(25, sdCAddr))
	nation := rg.s[sdCNtrg].unifInt(0, int64(len(g.d.nations.members))-1)
	b.ints(3, nation)
	b.strs(4, rg.phone(nation, sdCPhne))
	b.ints(5, rg.s[sdCAbal].unifInt(-99999, 999999))
	b.strs(6, rg.pick(g.d.mseg, sdCMseg))
	c := rg.text(73, sdCCmnt)
	b.strs(7, c)
	b.Len++
}

func (rg *rowGen) partPartSupp(i int64) {
	g := rg.g
	if b := rg.out[Part]; b != nil {
		// p_name: five distinct colors, the first five of a Fisher-Yates shuffle.
		colors := g.d.colors.members
		for k := range rg.perm {
			rg.perm[k] = k
		}
		st := &rg.s[sdPName]
		last := int64(len(colors) - 1)
		name := rg.scratch[:0]
		for k := 0; k < partNameWords; k++ {
			src := st.unifInt(int64(k), last)
			rg.perm[src], rg.perm[k] = rg.perm[k], rg.perm[src]
			if k > 0 {
				name = append(name, ' ')
			}
			name = append(name, colors[rg.perm[k]]...)
		}
		rg.scratch = name
		b.ints(0, i)
		b.strs(1, string(name))
		mfgr := rg.s[sdPMfg].unifInt(1, 5)
		b.strs(2, tagged("Manufacturer#", mfgr, 1))
		brand := rg.s[sdPBrnd].unifInt(1, 5)
		b.strs(3, tagged("Brand#", mfgr*10+brand, 2))
		b.strs(4, rg.pick(g.d.pTypes, sdPType))
		b.ints(5, rg.s[sdPSize].unifInt(1, 50))
		b.strs(6, rg.pick(g.d.pCntr, sdPCntr))
		b.ints(7, retailPrice(i))
		c := rg.text(14, sdPCmnt)
		b.strs(8, c)
		b.Len++
	}
	if b := rg.out[PartSupp]; b != nil {
		for supp := int64(0); supp < suppPerPart; supp++ {
			b.ints(0, i)
			b.ints(1, rg.partSuppBridge(i, supp))
			b.ints(2, rg.s[sdPSQty].unifInt(1, 9999))
			b.ints(3, rg.s[sdPSScst].unifInt(100, 100000))
			c := rg.text(124, sdPSCmnt)
			b.strs(4, c)
			b.Len++
		}
	}
}

func (rg *rowGen) nation(i int64) {
	d := rg.g.d.nations
	b := rg.out[Nation]
	b.ints(0, i-1)
	b.strs(1, d.members[i-1])
	b.ints(2, d.weights[i-1])
	c := rg.text(72, sdNCmnt)
	b.strs(3, c)
	b.Len++
}

func (rg *rowGen) region(i int64) {
	d := rg.g.d.regions
	b := rg.out[Region]
	b.ints(0, i-1)
	b.strs(1, d.members[i-1])
	c := rg.text(72, sdRCmnt)
	b.strs(2, c)
	b.Len++
}
