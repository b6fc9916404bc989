// Package sluice holds Sluice's domain: the log that everything streams
// through, the model that writes into it, and the error codes that every part
// shares. It imports nothing of the project; each subpackage implements or
// uses the interfaces defined here, and cmd/sluice wires them together.
//
// Data flows one way: request → model → log → reader → transport → wire.
package sluice
