package flagspec

import (
	"errors"
	"fmt"
	"time"
)

// Number is what the numeric rules apply to.
type Number interface {
	int | uint | time.Duration
}

// Positive wants a value above 0.
func Positive[T Number](v T) error {
	if v <= 0 {
		return fmt.Errorf("must be more than 0, got %v", v)
	}
	return nil
}

// NonNegative wants 0 or more, where 0 turns the setting off.
func NonNegative[T Number](v T) error {
	if v < 0 {
		return fmt.Errorf("must not be negative, got %v (0 turns it off)", v)
	}
	return nil
}

// Between wants a value from lo to hi.
func Between[T Number](lo, hi T) Rule[T] {
	return func(v T) error {
		if v < lo || v > hi {
			return fmt.Errorf("want %v to %v, got %v", lo, hi, v)
		}
		return nil
	}
}

// NotEmpty wants a value.
func NotEmpty(v string) error {
	if v == "" {
		return errors.New("must not be empty")
	}
	return nil
}
