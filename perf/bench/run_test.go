package bench

import (
	"reflect"
	"testing"
)

// TestRotateAlternatesOrder pins that over len(subjects) rounds every
// subject runs first once and each round keeps the cyclic order.
func TestRotateAlternatesOrder(t *testing.T) {
	subjects := []Subject{{Name: "native"}, {Name: "a"}, {Name: "b"}}
	want := [][]string{{"native", "a", "b"}, {"a", "b", "native"}, {"b", "native", "a"}, {"native", "a", "b"}}
	for r, w := range want {
		var got []string
		for _, s := range rotate(subjects, r) {
			got = append(got, s.Name)
		}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("round %d: order %v, want %v", r, got, w)
		}
	}
	if subjects[0].Name != "native" {
		t.Errorf("rotate changed its argument: %v", subjects)
	}
}
