package stream

// FusedCount reports whether source tasks run pl on the fused count path
// (wordcount.go).
func FusedCount(pl *Plan) bool { return pl.fusedCount }
