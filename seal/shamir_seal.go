package seal

import (
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/ppml/ppml/seal/shamir"
)

// Shamir splits the root key into Count shares, Threshold of which recover
// it. Nothing secret is stored: the server stays sealed until operators
// supply Threshold shares (in Shares) and Unseal is called.
type Shamir struct {
	Threshold int // K, for Init
	Count     int // N, for Init
	// Shares are the shares supplied for Unseal.
	Shares []shamir.Share
}

func (s *Shamir) Type() Type { return TypeShamir }

// Init creates a root key and splits it. The shares in the result must be
// shown to the operators once and never stored by the server.
func (s *Shamir) Init() (*InitResult, error) {
	root, err := newRootKey()
	if err != nil {
		return nil, err
	}
	shares, err := shamir.Split(root, s.Count, s.Threshold, nil)
	if err != nil {
		clear(root)
		return nil, fmt.Errorf("seal shamir: %w", err)
	}
	st, err := newState(TypeShamir, root)
	if err != nil {
		return nil, err
	}
	st.Version = 2
	st.Threshold, st.Shares = s.Threshold, s.Count
	st.SplitID = hex.EncodeToString(shares[0].SetID[:])
	for _, sh := range shares {
		st.ShareCommitments = append(st.ShareCommitments, ShareCommitment(sh))
	}
	return &InitResult{RootKey: root, State: st, Shares: shares}, nil
}

// Unseal combines s.Shares. Fewer than the threshold recorded in st give a
// *SealedError; shares that combine to a key that does not match st's
// verifier (a wrong, forged or damaged share) give ErrWrongKey.
func (s *Shamir) Unseal(st *State) ([]byte, error) {
	if st.Threshold < 2 {
		return nil, fmt.Errorf("seal shamir: sealed state has threshold %d", st.Threshold)
	}
	if len(s.Shares) < st.Threshold {
		return nil, &SealedError{Threshold: st.Threshold, Have: len(s.Shares)}
	}
	for i, sh := range s.Shares {
		if err := st.CheckShare(sh); err != nil {
			return nil, fmt.Errorf("seal shamir: share %d: %w", i+1, err)
		}
	}
	root, err := shamir.Combine(s.Shares)
	if err != nil {
		return nil, fmt.Errorf("seal shamir: %w", err)
	}
	if err := st.Check(root); err != nil {
		clear(root)
		if errors.Is(err, ErrWrongKey) {
			return nil, fmt.Errorf("seal shamir: the %d shares do not recover this server's root key: at least one is wrong, damaged or from another server: %w", len(s.Shares), err)
		}
		return nil, err
	}
	return root, nil
}
