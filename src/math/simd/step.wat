;; M rows, K columns (the reduced dimension), N elements, H hidden. All f32, row-major.
;; The per-token step of a recurrent network in WebAssembly SIMD. Every function takes byte
;; offsets into the one imported memory and sizes in elements; nothing is allocated and nothing
;; is read or written outside the ranges each function documents.
;;
;; Built into step.wasm by build.ts (wabt, SIMD enabled); the committed step.wasm is checked
;; against this source by test/simd_stepper_test.ts.
(module
  (import "env" "memory" (memory 1))

  ;; ---------------------------------------------------------------------------------------------
  ;; Activations, as passes over arrays of N floats: vectors of four while four are left, then
  ;; the N mod 4 left one lane at a time through the same code ($ld loads one lane and zeros the
  ;; rest, $st stores one lane). exp is Cephes' expf (range reduction by ln 2 in two parts, a
  ;; degree-6 polynomial, the exponent built from bits): a few ulp relative, which keeps sigmoid
  ;; and tanh within 1e-6 absolute of Math's (the test checks it over the whole f32 range).
  ;;
  ;; Two things about V8 shape this code. A v128.const is built afresh at every use (several
  ;; instructions), so each pass loads its constants into locals before its loop. And a call per
  ;; vector to an exp function, which V8 does not inline at this size, cost twice what a loop
  ;; over the whole array costs: so each cell runs its exponentials as one pass over its gates.

  ;; Four lanes at $p when $wide, else the lane at $p with the other three zero.
  (func $ld (param $p i32) (param $wide i32) (result v128)
    (if (result v128) (local.get $wide)
      (then (v128.load (local.get $p)))
      (else (v128.load32_zero (local.get $p)))))

  ;; Stores four lanes of $v at $p when $wide, else its first lane.
  (func $st (param $p i32) (param $v v128) (param $wide i32)
    (if (local.get $wide)
      (then (v128.store (local.get $p) (local.get $v)))
      (else (v128.store32_lane 0 (local.get $p) (local.get $v)))))

  ;; Whether four floats are left from j of N (else one is).
  (func $wide (param $j i32) (param $n i32) (result i32)
    (i32.le_u (i32.add (local.get $j) (i32.const 4)) (local.get $n)))

  ;; How far a pass moves after the floats at j: four when $wide, else one.
  (func $stride (param $wide i32) (result i32)
    (select (i32.const 4) (i32.const 1) (local.get $wide)))

  ;; y = s (a + b) for N floats; y may alias a or b. With s = -1 it is the argument of σ, with
  ;; s = 2 that of tanh; both products are exact, so -(a + b) and (a + b) + (a + b) are the bits.
  (func $scaled_sum (param $y i32) (param $a i32) (param $b i32) (param $n i32) (param $s f32)
    (local $j i32) (local $o i32) (local $w i32) (local $sv v128)
    (local.set $sv (f32x4.splat (local.get $s)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $j) (local.get $n)))
        (local.set $w (call $wide (local.get $j) (local.get $n)))
        (local.set $o (i32.shl (local.get $j) (i32.const 2)))
        (call $st (i32.add (local.get $y) (local.get $o))
          (f32x4.mul (local.get $sv)
            (f32x4.add
              (call $ld (i32.add (local.get $a) (local.get $o)) (local.get $w))
              (call $ld (i32.add (local.get $b) (local.get $o)) (local.get $w))))
          (local.get $w))
        (local.set $j (i32.add (local.get $j) (call $stride (local.get $w))))
        (br $next))))

  ;; y = e^(x - m) for N floats, for x - m ≤ 88 (larger are clamped to 88: e^88 ≈ 1.65e38 is the
  ;; largest we need) and x - m ≥ -87.34 (smaller give the smallest normal, 1.2e-38, instead of
  ;; 0); y may alias x. The clamps are pmin/pmax with x first, which pass a NaN through. Fused
  ;; multiply-adds (relaxed_madd, relaxed_nmadd) halve the operations of the reduction and the
  ;; polynomial.
  (func $exp (param $y i32) (param $x i32) (param $count i32) (param $m f32)
    (local $j i32) (local $o i32) (local $w i32) (local $mv v128)
    (local $v v128) (local $n v128) (local $r v128) (local $p v128)
    (local $hi v128) (local $lo v128) (local $log2e v128) (local $ln2hi v128) (local $ln2lo v128)
    (local $c0 v128) (local $c1 v128) (local $c2 v128) (local $c3 v128) (local $c4 v128)
    (local $c5 v128) (local $one v128) (local $bias v128)
    (local.set $mv (f32x4.splat (local.get $m)))
    (local.set $hi (v128.const f32x4 88 88 88 88))
    (local.set $lo (v128.const f32x4 -87.33654 -87.33654 -87.33654 -87.33654))
    (local.set $log2e (v128.const f32x4 1.44269504088896341 1.44269504088896341 1.44269504088896341 1.44269504088896341))
    (local.set $ln2hi (v128.const f32x4 0.693359375 0.693359375 0.693359375 0.693359375))
    (local.set $ln2lo (v128.const f32x4 -2.12194440e-4 -2.12194440e-4 -2.12194440e-4 -2.12194440e-4))
    (local.set $c0 (v128.const f32x4 1.9875691500e-4 1.9875691500e-4 1.9875691500e-4 1.9875691500e-4))
    (local.set $c1 (v128.const f32x4 1.3981999507e-3 1.3981999507e-3 1.3981999507e-3 1.3981999507e-3))
    (local.set $c2 (v128.const f32x4 8.3334519073e-3 8.3334519073e-3 8.3334519073e-3 8.3334519073e-3))
    (local.set $c3 (v128.const f32x4 4.1665795894e-2 4.1665795894e-2 4.1665795894e-2 4.1665795894e-2))
    (local.set $c4 (v128.const f32x4 1.6666665459e-1 1.6666665459e-1 1.6666665459e-1 1.6666665459e-1))
    (local.set $c5 (v128.const f32x4 5.0000001201e-1 5.0000001201e-1 5.0000001201e-1 5.0000001201e-1))
    (local.set $one (v128.const f32x4 1 1 1 1))
    (local.set $bias (v128.const i32x4 127 127 127 127))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $j) (local.get $count)))
        (local.set $w (call $wide (local.get $j) (local.get $count)))
        (local.set $o (i32.shl (local.get $j) (i32.const 2)))
        (local.set $v (f32x4.sub
          (call $ld (i32.add (local.get $x) (local.get $o)) (local.get $w)) (local.get $mv)))
        (local.set $v (f32x4.pmax (f32x4.pmin (local.get $v) (local.get $hi)) (local.get $lo)))
        ;; n = round(v / ln 2), r = v - n ln 2 with ln 2 = C1 - C2 split so n C1 is exact
        (local.set $n (f32x4.nearest (f32x4.mul (local.get $v) (local.get $log2e))))
        (local.set $r (f32x4.relaxed_nmadd (local.get $n) (local.get $ln2hi) (local.get $v)))
        (local.set $r (f32x4.relaxed_nmadd (local.get $n) (local.get $ln2lo) (local.get $r)))
        ;; e^r ≈ 1 + r + r² P(r), P by Horner's rule
        (local.set $p (f32x4.relaxed_madd (local.get $c0) (local.get $r) (local.get $c1)))
        (local.set $p (f32x4.relaxed_madd (local.get $p) (local.get $r) (local.get $c2)))
        (local.set $p (f32x4.relaxed_madd (local.get $p) (local.get $r) (local.get $c3)))
        (local.set $p (f32x4.relaxed_madd (local.get $p) (local.get $r) (local.get $c4)))
        (local.set $p (f32x4.relaxed_madd (local.get $p) (local.get $r) (local.get $c5)))
        (local.set $p
          (f32x4.add
            (f32x4.relaxed_madd (local.get $p) (f32x4.mul (local.get $r) (local.get $r))
              (local.get $r))
            (local.get $one)))
        ;; times 2^n: n + 127 in the exponent bits (n is in [-126, 127] after the clamp)
        (call $st (i32.add (local.get $y) (local.get $o))
          (f32x4.mul (local.get $p)
            (i32x4.shl
              (i32x4.add (i32x4.trunc_sat_f32x4_s (local.get $n)) (local.get $bias))
              (i32.const 23)))
          (local.get $w))
        (local.set $j (i32.add (local.get $j) (call $stride (local.get $w))))
        (br $next))))

  ;; y = 1 / (1 + x) for N floats (σ, once x holds e^-v); y may alias x.
  (func $sigmoid_of_exp (param $y i32) (param $x i32) (param $n i32)
    (local $j i32) (local $o i32) (local $w i32) (local $one v128)
    (local.set $one (v128.const f32x4 1 1 1 1))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $j) (local.get $n)))
        (local.set $w (call $wide (local.get $j) (local.get $n)))
        (local.set $o (i32.shl (local.get $j) (i32.const 2)))
        (call $st (i32.add (local.get $y) (local.get $o))
          (f32x4.div (local.get $one)
            (f32x4.add (local.get $one)
              (call $ld (i32.add (local.get $x) (local.get $o)) (local.get $w))))
          (local.get $w))
        (local.set $j (i32.add (local.get $j) (call $stride (local.get $w))))
        (br $next))))

  ;; y = 1 - 2 / (x + 1) for N floats (tanh v, once x holds e^2v); y may alias x. One
  ;; exponential and one division, no branch. Near 0 the subtraction cancels, but the absolute
  ;; error stays below 2e-7 (f32's spacing at 1), which is what the step's tolerances are about;
  ;; at ±∞ the clamps in $exp give ±1 exactly.
  (func $tanh_of_exp (param $y i32) (param $x i32) (param $n i32)
    (local $j i32) (local $o i32) (local $w i32) (local $one v128) (local $two v128)
    (local.set $one (v128.const f32x4 1 1 1 1))
    (local.set $two (v128.const f32x4 2 2 2 2))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $j) (local.get $n)))
        (local.set $w (call $wide (local.get $j) (local.get $n)))
        (local.set $o (i32.shl (local.get $j) (i32.const 2)))
        (call $st (i32.add (local.get $y) (local.get $o))
          (f32x4.sub (local.get $one)
            (f32x4.div (local.get $two)
              (f32x4.add (call $ld (i32.add (local.get $x) (local.get $o)) (local.get $w))
                (local.get $one))))
          (local.get $w))
        (local.set $j (i32.add (local.get $j) (call $stride (local.get $w))))
        (br $next))))

  ;; y = σ(x) = 1 / (1 + e^-x) for N floats; exported so tests can hold the approximation to
  ;; Math's. -x is written -½ (x + x): where x + x overflows, the clamp in $exp gives the same.
  (func (export "sigmoid") (param $y i32) (param $x i32) (param $n i32)
    (call $scaled_sum (local.get $y) (local.get $x) (local.get $x) (local.get $n) (f32.const -0.5))
    (call $exp (local.get $y) (local.get $y) (local.get $n) (f32.const 0))
    (call $sigmoid_of_exp (local.get $y) (local.get $y) (local.get $n)))

  ;; y = tanh(x) = 1 - 2 / (e^2x + 1) for N floats; exported so tests can hold the approximation
  ;; to Math's.
  (func (export "tanh") (param $y i32) (param $x i32) (param $n i32)
    (call $scaled_sum (local.get $y) (local.get $x) (local.get $x) (local.get $n) (f32.const 1))
    (call $exp (local.get $y) (local.get $y) (local.get $n) (f32.const 0))
    (call $tanh_of_exp (local.get $y) (local.get $y) (local.get $n)))

  ;; ---------------------------------------------------------------------------------------------
  ;; Matrix-vector products.

  ;; Sum of the four lanes.
  (func $hsum (param $v v128) (result f32)
    (f32.add
      (f32.add (f32x4.extract_lane 0 (local.get $v)) (f32x4.extract_lane 1 (local.get $v)))
      (f32.add (f32x4.extract_lane 2 (local.get $v)) (f32x4.extract_lane 3 (local.get $v)))))

  ;; y = W x + b with W row-major (M, K), x (K), b (M), y (M); any M and K. Four rows at a time,
  ;; one accumulator each, so every load of x serves four rows; the K mod 4 tail is scalar.
  (func (export "matvec")
    (param $y i32) (param $w i32) (param $x i32) (param $b i32) (param $m i32) (param $k i32)
    (local $i i32) (local $j i32) (local $k4 i32) (local $row i32) (local $xv v128)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (local $w0 i32) (local $w1 i32) (local $w2 i32) (local $w3 i32) (local $stride i32)
    (local $s0 f32) (local $s1 f32) (local $s2 f32) (local $s3 f32) (local $xj f32)
    (local.set $k4 (i32.and (local.get $k) (i32.const -4)))
    (local.set $stride (i32.shl (local.get $k) (i32.const 2)))
    (block $rows4done
      (loop $rows4
        (br_if $rows4done (i32.gt_u (i32.add (local.get $i) (i32.const 4)) (local.get $m)))
        (local.set $w0 (i32.add (local.get $w) (i32.mul (local.get $i) (local.get $stride))))
        (local.set $w1 (i32.add (local.get $w0) (local.get $stride)))
        (local.set $w2 (i32.add (local.get $w1) (local.get $stride)))
        (local.set $w3 (i32.add (local.get $w2) (local.get $stride)))
        (local.set $a0 (v128.const i32x4 0 0 0 0))
        (local.set $a1 (v128.const i32x4 0 0 0 0))
        (local.set $a2 (v128.const i32x4 0 0 0 0))
        (local.set $a3 (v128.const i32x4 0 0 0 0))
        (local.set $j (i32.const 0))
        (block $colsdone
          (loop $cols
            (br_if $colsdone (i32.ge_u (local.get $j) (local.get $k4)))
            (local.set $xv (v128.load (i32.add (local.get $x) (i32.shl (local.get $j)
              (i32.const 2)))))
            (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (v128.load (local.get $w0))
              (local.get $xv))))
            (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (v128.load (local.get $w1))
              (local.get $xv))))
            (local.set $a2 (f32x4.add (local.get $a2) (f32x4.mul (v128.load (local.get $w2))
              (local.get $xv))))
            (local.set $a3 (f32x4.add (local.get $a3) (f32x4.mul (v128.load (local.get $w3))
              (local.get $xv))))
            (local.set $w0 (i32.add (local.get $w0) (i32.const 16)))
            (local.set $w1 (i32.add (local.get $w1) (i32.const 16)))
            (local.set $w2 (i32.add (local.get $w2) (i32.const 16)))
            (local.set $w3 (i32.add (local.get $w3) (i32.const 16)))
            (local.set $j (i32.add (local.get $j) (i32.const 4)))
            (br $cols)))
        (local.set $s0 (call $hsum (local.get $a0)))
        (local.set $s1 (call $hsum (local.get $a1)))
        (local.set $s2 (call $hsum (local.get $a2)))
        (local.set $s3 (call $hsum (local.get $a3)))
        (block $taildone
          (loop $tail
            (br_if $taildone (i32.ge_u (local.get $j) (local.get $k)))
            (local.set $xj (f32.load (i32.add (local.get $x) (i32.shl (local.get $j)
              (i32.const 2)))))
            (local.set $s0 (f32.add (local.get $s0) (f32.mul (f32.load (local.get $w0))
              (local.get $xj))))
            (local.set $s1 (f32.add (local.get $s1) (f32.mul (f32.load (local.get $w1))
              (local.get $xj))))
            (local.set $s2 (f32.add (local.get $s2) (f32.mul (f32.load (local.get $w2))
              (local.get $xj))))
            (local.set $s3 (f32.add (local.get $s3) (f32.mul (f32.load (local.get $w3))
              (local.get $xj))))
            (local.set $w0 (i32.add (local.get $w0) (i32.const 4)))
            (local.set $w1 (i32.add (local.get $w1) (i32.const 4)))
            (local.set $w2 (i32.add (local.get $w2) (i32.const 4)))
            (local.set $w3 (i32.add (local.get $w3) (i32.const 4)))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $tail)))
        (local.set $row (i32.add (local.get $y) (i32.shl (local.get $i) (i32.const 2))))
        (local.set $w0 (i32.add (local.get $b) (i32.shl (local.get $i) (i32.const 2))))
        (f32.store offset=0 (local.get $row) (f32.add (f32.load offset=0 (local.get $w0))
          (local.get $s0)))
        (f32.store offset=4 (local.get $row) (f32.add (f32.load offset=4 (local.get $w0))
          (local.get $s1)))
        (f32.store offset=8 (local.get $row) (f32.add (f32.load offset=8 (local.get $w0))
          (local.get $s2)))
        (f32.store offset=12 (local.get $row) (f32.add (f32.load offset=12 (local.get $w0))
          (local.get $s3)))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $rows4)))
    ;; the M mod 4 rows left, one at a time
    (block $rowsdone
      (loop $rows
        (br_if $rowsdone (i32.ge_u (local.get $i) (local.get $m)))
        (local.set $w0 (i32.add (local.get $w) (i32.mul (local.get $i) (local.get $stride))))
        (local.set $a0 (v128.const i32x4 0 0 0 0))
        (local.set $j (i32.const 0))
        (block $cdone
          (loop $c
            (br_if $cdone (i32.ge_u (local.get $j) (local.get $k4)))
            (local.set $a0 (f32x4.add (local.get $a0)
              (f32x4.mul (v128.load (local.get $w0))
                (v128.load (i32.add (local.get $x) (i32.shl (local.get $j) (i32.const 2)))))))
            (local.set $w0 (i32.add (local.get $w0) (i32.const 16)))
            (local.set $j (i32.add (local.get $j) (i32.const 4)))
            (br $c)))
        (local.set $s0 (call $hsum (local.get $a0)))
        (block $tdone
          (loop $t
            (br_if $tdone (i32.ge_u (local.get $j) (local.get $k)))
            (local.set $s0 (f32.add (local.get $s0)
              (f32.mul (f32.load (local.get $w0))
                (f32.load (i32.add (local.get $x) (i32.shl (local.get $j) (i32.const 2)))))))
            (local.set $w0 (i32.add (local.get $w0) (i32.const 4)))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $t)))
        (f32.store (i32.add (local.get $y) (i32.shl (local.get $i) (i32.const 2)))
          (f32.add (f32.load (i32.add (local.get $b) (i32.shl (local.get $i) (i32.const 2))))
            (local.get $s0)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $rows))))

  ;; Lays W (M, K) row-major out in panels of 16 rows for matvec_packed: panel p holds, column by
  ;; column, rows 16p..16p+15, so `dst[(p K + j) 16 + r] = W[16p + r, j]`, rows past M zero.
  ;; dst takes ceil(M / 16) · 16 · K floats.
  (func (export "pack") (param $dst i32) (param $src i32) (param $m i32) (param $k i32)
    (local $p i32) (local $j i32) (local $r i32) (local $row i32)
    (block $pdone
      (loop $panels
        (br_if $pdone (i32.ge_u (i32.shl (local.get $p) (i32.const 4)) (local.get $m)))
        (local.set $j (i32.const 0))
        (block $jdone
          (loop $cols
            (br_if $jdone (i32.ge_u (local.get $j) (local.get $k)))
            (local.set $r (i32.const 0))
            (block $rdone
              (loop $rows
                (br_if $rdone (i32.ge_u (local.get $r) (i32.const 16)))
                (local.set $row (i32.add (i32.shl (local.get $p) (i32.const 4)) (local.get $r)))
                (f32.store (local.get $dst)
                  (if (result f32) (i32.lt_u (local.get $row) (local.get $m))
                    (then
                      (f32.load (i32.add (local.get $src)
                        (i32.shl
                          (i32.add (i32.mul (local.get $row) (local.get $k)) (local.get $j))
                          (i32.const 2)))))
                    (else (f32.const 0))))
                (local.set $dst (i32.add (local.get $dst) (i32.const 4)))
                (local.set $r (i32.add (local.get $r) (i32.const 1)))
                (br $rows)))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $cols)))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $panels))))

  ;; y = W x + b with W laid out by `pack`; x (K), b and y padded to ceil(M / 16) · 16 floats
  ;; (b's padding read, y's padding written). Two panels (32 rows, eight vectors) at a time: per
  ;; column one broadcast of x[j] feeds eight independent accumulators, no horizontal sums are
  ;; needed, and each output is b + Σ_j W[i, j] x[j] summed in column order, the order
  ;; matmul_packed keeps too, so a stream stepped alone or in a batch gets the same bits. An odd
  ;; panel count leaves one panel of four accumulators. relaxed_madd is one fused multiply-add
  ;; where the processor has FMA (x86-64 with FMA3, arm64), else a multiply and an add.
  (func $matvec_packed (export "matvec_packed")
    (param $y i32) (param $w i32) (param $x i32) (param $b i32) (param $m i32) (param $k i32)
    (local $p i32) (local $j i32) (local $xs v128) (local $wq i32) (local $xp i32) (local $pb i32)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (local $a4 v128) (local $a5 v128) (local $a6 v128) (local $a7 v128)
    ;; bytes in one panel: 16 rows of K floats
    (local.set $pb (i32.shl (local.get $k) (i32.const 6)))
    (block $pdone
      (loop $pairs
        (br_if $pdone (i32.gt_u (i32.add (local.get $p) (i32.const 32))
          (i32.add (local.get $m) (i32.const 15))))
        (local.set $a0 (v128.load offset=0 (local.get $b)))
        (local.set $a1 (v128.load offset=16 (local.get $b)))
        (local.set $a2 (v128.load offset=32 (local.get $b)))
        (local.set $a3 (v128.load offset=48 (local.get $b)))
        (local.set $a4 (v128.load offset=64 (local.get $b)))
        (local.set $a5 (v128.load offset=80 (local.get $b)))
        (local.set $a6 (v128.load offset=96 (local.get $b)))
        (local.set $a7 (v128.load offset=112 (local.get $b)))
        (local.set $wq (i32.add (local.get $w) (local.get $pb)))
        (local.set $xp (local.get $x))
        (local.set $j (i32.const 0))
        (block $jdone
          (loop $cols
            (br_if $jdone (i32.ge_u (local.get $j) (local.get $k)))
            (local.set $xs (v128.load32_splat (local.get $xp)))
            (local.set $a0
              (f32x4.relaxed_madd (local.get $xs) (v128.load offset=0 (local.get $w)) (local.get $a0)))
            (local.set $a1
              (f32x4.relaxed_madd (local.get $xs) (v128.load offset=16 (local.get $w)) (local.get $a1)))
            (local.set $a2
              (f32x4.relaxed_madd (local.get $xs) (v128.load offset=32 (local.get $w)) (local.get $a2)))
            (local.set $a3
              (f32x4.relaxed_madd (local.get $xs) (v128.load offset=48 (local.get $w)) (local.get $a3)))
            (local.set $a4
              (f32x4.relaxed_madd (local.get $xs) (v128.load offset=0 (local.get $wq)) (local.get $a4)))
            (local.set $a5
              (f32x4.relaxed_madd (local.get $xs) (v128.load offset=16 (local.get $wq)) (local.get $a5)))
            (local.set $a6
              (f32x4.relaxed_madd (local.get $xs) (v128.load offset=32 (local.get $wq)) (local.get $a6)))
            (local.set $a7
              (f32x4.relaxed_madd (local.get $xs) (v128.load offset=48 (local.get $wq)) (local.get $a7)))
            (local.set $w (i32.add (local.get $w) (i32.const 64)))
            (local.set $wq (i32.add (local.get $wq) (i32.const 64)))
            (local.set $xp (i32.add (local.get $xp) (i32.const 4)))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $cols)))
        (v128.store offset=0 (local.get $y) (local.get $a0))
        (v128.store offset=16 (local.get $y) (local.get $a1))
        (v128.store offset=32 (local.get $y) (local.get $a2))
        (v128.store offset=48 (local.get $y) (local.get $a3))
        (v128.store offset=64 (local.get $y) (local.get $a4))
        (v128.store offset=80 (local.get $y) (local.get $a5))
        (v128.store offset=96 (local.get $y) (local.get $a6))
        (v128.store offset=112 (local.get $y) (local.get $a7))
        ;; $w has passed its first panel; the second ends where $wq stopped
        (local.set $w (local.get $wq))
        (local.set $y (i32.add (local.get $y) (i32.const 128)))
        (local.set $b (i32.add (local.get $b) (i32.const 128)))
        (local.set $p (i32.add (local.get $p) (i32.const 32)))
        (br $pairs)))
    ;; one panel left
    (if (i32.lt_u (local.get $p) (local.get $m))
      (then
        (local.set $a0 (v128.load offset=0 (local.get $b)))
        (local.set $a1 (v128.load offset=16 (local.get $b)))
        (local.set $a2 (v128.load offset=32 (local.get $b)))
        (local.set $a3 (v128.load offset=48 (local.get $b)))
        (local.set $xp (local.get $x))
        (local.set $j (i32.const 0))
        (block $tdone
          (loop $tcols
            (br_if $tdone (i32.ge_u (local.get $j) (local.get $k)))
            (local.set $xs (v128.load32_splat (local.get $xp)))
            (local.set $a0
              (f32x4.relaxed_madd (local.get $xs) (v128.load offset=0 (local.get $w)) (local.get $a0)))
            (local.set $a1
              (f32x4.relaxed_madd (local.get $xs) (v128.load offset=16 (local.get $w)) (local.get $a1)))
            (local.set $a2
              (f32x4.relaxed_madd (local.get $xs) (v128.load offset=32 (local.get $w)) (local.get $a2)))
            (local.set $a3
              (f32x4.relaxed_madd (local.get $xs) (v128.load offset=48 (local.get $w)) (local.get $a3)))
            (local.set $w (i32.add (local.get $w) (i32.const 64)))
            (local.set $xp (i32.add (local.get $xp) (i32.const 4)))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $tcols)))
        (v128.store offset=0 (local.get $y) (local.get $a0))
        (v128.store offset=16 (local.get $y) (local.get $a1))
        (v128.store offset=32 (local.get $y) (local.get $a2))
        (v128.store offset=48 (local.get $y) (local.get $a3)))))

  ;; Y = X Wᵀ + b for N streams at once (batched stepping): stream s's x (K) starts XS floats
  ;; after stream s-1's (XS ≥ K: a stream's h inside its whole state), Y (N, Mp) with
  ;; Mp = ceil(M / 16) · 16 (each stream's row padded like matvec_packed's y), W packed by `pack`,
  ;; b padded. Two streams at a time share every load of W, which halves the weight traffic that
  ;; bounds matvec_packed; an odd N leaves one stream for matvec_packed. Each stream's result is
  ;; bit for bit what matvec_packed gives it alone (the same operations in the same order).
  (func (export "matmul_packed")
    (param $y i32) (param $w i32) (param $x i32) (param $xs i32) (param $b i32) (param $m i32)
    (param $k i32) (param $n i32)
    (local $s i32) (local $p i32) (local $j i32) (local $mp i32) (local $kb i32)
    (local $wp i32) (local $xa i32) (local $xb i32) (local $yp i32) (local $bp i32)
    (local $u v128) (local $v v128) (local $wv v128) (local $xv v128) (local $xw v128)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (local $a4 v128) (local $a5 v128) (local $a6 v128) (local $a7 v128)
    (local.set $mp (i32.shl (i32.and (i32.add (local.get $m) (i32.const 15)) (i32.const -16))
      (i32.const 2)))
    (local.set $kb (i32.shl (local.get $xs) (i32.const 2)))
    (block $pairsdone
      (loop $pairs
        (br_if $pairsdone (i32.gt_u (i32.add (local.get $s) (i32.const 2)) (local.get $n)))
        (local.set $yp (i32.add (local.get $y) (i32.mul (local.get $s) (local.get $mp))))
        (local.set $wp (local.get $w))
        (local.set $bp (local.get $b))
        (local.set $p (i32.const 0))
        (block $pdone
          (loop $panels
            (br_if $pdone (i32.ge_u (local.get $p) (local.get $m)))
            (local.set $a0 (v128.load offset=0 (local.get $bp)))
            (local.set $a1 (v128.load offset=16 (local.get $bp)))
            (local.set $a2 (v128.load offset=32 (local.get $bp)))
            (local.set $a3 (v128.load offset=48 (local.get $bp)))
            (local.set $a4 (local.get $a0))
            (local.set $a5 (local.get $a1))
            (local.set $a6 (local.get $a2))
            (local.set $a7 (local.get $a3))
            (local.set $xa (i32.add (local.get $x) (i32.mul (local.get $s) (local.get $kb))))
            (local.set $xb (i32.add (local.get $xa) (local.get $kb)))
            (local.set $j (i32.const 0))
            ;; four columns per pass while four are left (V8 checks the bounds of every load
            ;; and polls for interrupts once per pass: fewer passes, fewer instructions per
            ;; multiply-add), then one at a time. A pass loads each stream's x[j..j+3] once and
            ;; broadcasts each value by a shuffle, which has no bounds check: two loads of x
            ;; instead of eight.
            (block $jdone
              (loop $cols
                (br_if $jdone (i32.gt_u (i32.add (local.get $j) (i32.const 4)) (local.get $k)))
                (local.set $xv (v128.load (local.get $xa)))
                (local.set $xw (v128.load (local.get $xb)))
                (local.set $u
                  (i8x16.shuffle 0 1 2 3 0 1 2 3 0 1 2 3 0 1 2 3 (local.get $xv) (local.get $xv)))
                (local.set $v
                  (i8x16.shuffle 0 1 2 3 0 1 2 3 0 1 2 3 0 1 2 3 (local.get $xw) (local.get $xw)))
                (local.set $wv (v128.load offset=0 (local.get $wp)))
                (local.set $a0 (f32x4.relaxed_madd (local.get $u) (local.get $wv) (local.get $a0)))
                (local.set $a4 (f32x4.relaxed_madd (local.get $v) (local.get $wv) (local.get $a4)))
                (local.set $wv (v128.load offset=16 (local.get $wp)))
                (local.set $a1 (f32x4.relaxed_madd (local.get $u) (local.get $wv) (local.get $a1)))
                (local.set $a5 (f32x4.relaxed_madd (local.get $v) (local.get $wv) (local.get $a5)))
                (local.set $wv (v128.load offset=32 (local.get $wp)))
                (local.set $a2 (f32x4.relaxed_madd (local.get $u) (local.get $wv) (local.get $a2)))
                (local.set $a6 (f32x4.relaxed_madd (local.get $v) (local.get $wv) (local.get $a6)))
                (local.set $wv (v128.load offset=48 (local.get $wp)))
                (local.set $a3 (f32x4.relaxed_madd (local.get $u) (local.get $wv) (local.get $a3)))
                (local.set $a7 (f32x4.relaxed_madd (local.get $v) (local.get $wv) (local.get $a7)))
                (local.set $u
                  (i8x16.shuffle 4 5 6 7 4 5 6 7 4 5 6 7 4 5 6 7 (local.get $xv) (local.get $xv)))
                (local.set $v
                  (i8x16.shuffle 4 5 6 7 4 5 6 7 4 5 6 7 4 5 6 7 (local.get $xw) (local.get $xw)))
                (local.set $wv (v128.load offset=64 (local.get $wp)))
                (local.set $a0 (f32x4.relaxed_madd (local.get $u) (local.get $wv) (local.get $a0)))
                (local.set $a4 (f32x4.relaxed_madd (local.get $v) (local.get $wv) (local.get $a4)))
                (local.set $wv (v128.load offset=80 (local.get $wp)))
                (local.set $a1 (f32x4.relaxed_madd (local.get $u) (local.get $wv) (local.get $a1)))
                (local.set $a5 (f32x4.relaxed_madd (local.get $v) (local.get $wv) (local.get $a5)))
                (local.set $wv (v128.load offset=96 (local.get $wp)))
                (local.set $a2 (f32x4.relaxed_madd (local.get $u) (local.get $wv) (local.get $a2)))
                (local.set $a6 (f32x4.relaxed_madd (local.get $v) (local.get $wv) (local.get $a6)))
                (local.set $wv (v128.load offset=112 (local.get $wp)))
                (local.set $a3 (f32x4.relaxed_madd (local.get $u) (local.get $wv) (local.get $a3)))
                (local.set $a7 (f32x4.relaxed_madd (local.get $v) (local.get $wv) (local.get $a7)))
                (local.set $u
                  (i8x16.shuffle 8 9 10 11 8 9 10 11 8 9 10 11 8 9 10 11 (local.get $xv) (local.get $xv)))
                (local.set $v
                  (i8x16.shuffle 8 9 10 11 8 9 10 11 8 9 10 11 8 9 10 11 (local.get $xw) (local.get $xw)))
                (local.set $wv (v128.load offset=128 (local.get $wp)))
                (local.set $a0 (f32x4.relaxed_madd (local.get $u) (local.get $wv) (local.get $a0)))
                (local.set $a4 (f32x4.relaxed_madd (local.get $v) (local.get $wv) (local.get $a4)))
                (local.set $wv (v128.load offset=144 (local.get $wp)))
                (local.set $a1 (f32x4.relaxed_madd (local.get $u) (local.get $wv) (local.get $a1)))
                (local.set $a5 (f32x4.relaxed_madd (local.get $v) (local.get $wv) (local.get $a5)))
                (local.set $wv (v128.load offset=160 (local.get $wp)))
                (local.set $a2 (f32x4.relaxed_madd (local.get $u) (local.get $wv) (local.get $a2)))
                (local.set $a6 (f32x4.relaxed_madd (local.get $v) (local.get $wv) (local.get $a6)))
                (local.set $wv (v128.load offset=176 (local.get $wp)))
                (local.set $a3 (f32x4.relaxed_madd (local.get $u) (local.get $wv) (local.get $a3)))
                (local.set $a7 (f32x4.relaxed_madd (local.get $v) (local.get $wv) (local.get $a7)))
                (local.set $u
                  (i8x16.shuffle 12 13 14 15 12 13 14 15 12 13 14 15 12 13 14 15 (local.get $xv) (local.get $xv)))
                (local.set $v
                  (i8x16.shuffle 12 13 14 15 12 13 14 15 12 13 14 15 12 13 14 15 (local.get $xw) (local.get $xw)))
                (local.set $wv (v128.load offset=192 (local.get $wp)))
                (local.set $a0 (f32x4.relaxed_madd (local.get $u) (local.get $wv) (local.get $a0)))
                (local.set $a4 (f32x4.relaxed_madd (local.get $v) (local.get $wv) (local.get $a4)))
                (local.set $wv (v128.load offset=208 (local.get $wp)))
                (local.set $a1 (f32x4.relaxed_madd (local.get $u) (local.get $wv) (local.get $a1)))
                (local.set $a5 (f32x4.relaxed_madd (local.get $v) (local.get $wv) (local.get $a5)))
                (local.set $wv (v128.load offset=224 (local.get $wp)))
                (local.set $a2 (f32x4.relaxed_madd (local.get $u) (local.get $wv) (local.get $a2)))
                (local.set $a6 (f32x4.relaxed_madd (local.get $v) (local.get $wv) (local.get $a6)))
                (local.set $wv (v128.load offset=240 (local.get $wp)))
                (local.set $a3 (f32x4.relaxed_madd (local.get $u) (local.get $wv) (local.get $a3)))
                (local.set $a7 (f32x4.relaxed_madd (local.get $v) (local.get $wv) (local.get $a7)))
                (local.set $wp (i32.add (local.get $wp) (i32.const 256)))
                (local.set $xa (i32.add (local.get $xa) (i32.const 16)))
                (local.set $xb (i32.add (local.get $xb) (i32.const 16)))
                (local.set $j (i32.add (local.get $j) (i32.const 4)))
                (br $cols)))
            (block $tdone
              (loop $tail
                (br_if $tdone (i32.ge_u (local.get $j) (local.get $k)))
                (local.set $u (v128.load32_splat offset=0 (local.get $xa)))
                (local.set $v (v128.load32_splat offset=0 (local.get $xb)))
                (local.set $wv (v128.load offset=0 (local.get $wp)))
                (local.set $a0 (f32x4.relaxed_madd (local.get $u) (local.get $wv) (local.get $a0)))
                (local.set $a4 (f32x4.relaxed_madd (local.get $v) (local.get $wv) (local.get $a4)))
                (local.set $wv (v128.load offset=16 (local.get $wp)))
                (local.set $a1 (f32x4.relaxed_madd (local.get $u) (local.get $wv) (local.get $a1)))
                (local.set $a5 (f32x4.relaxed_madd (local.get $v) (local.get $wv) (local.get $a5)))
                (local.set $wv (v128.load offset=32 (local.get $wp)))
                (local.set $a2 (f32x4.relaxed_madd (local.get $u) (local.get $wv) (local.get $a2)))
                (local.set $a6 (f32x4.relaxed_madd (local.get $v) (local.get $wv) (local.get $a6)))
                (local.set $wv (v128.load offset=48 (local.get $wp)))
                (local.set $a3 (f32x4.relaxed_madd (local.get $u) (local.get $wv) (local.get $a3)))
                (local.set $a7 (f32x4.relaxed_madd (local.get $v) (local.get $wv) (local.get $a7)))
                (local.set $wp (i32.add (local.get $wp) (i32.const 64)))
                (local.set $xa (i32.add (local.get $xa) (i32.const 4)))
                (local.set $xb (i32.add (local.get $xb) (i32.const 4)))
                (local.set $j (i32.add (local.get $j) (i32.const 1)))
                (br $tail)))
            (v128.store offset=0 (local.get $yp) (local.get $a0))
            (v128.store offset=16 (local.get $yp) (local.get $a1))
            (v128.store offset=32 (local.get $yp) (local.get $a2))
            (v128.store offset=48 (local.get $yp) (local.get $a3))
            (v128.store offset=0 (i32.add (local.get $yp) (local.get $mp)) (local.get $a4))
            (v128.store offset=16 (i32.add (local.get $yp) (local.get $mp)) (local.get $a5))
            (v128.store offset=32 (i32.add (local.get $yp) (local.get $mp)) (local.get $a6))
            (v128.store offset=48 (i32.add (local.get $yp) (local.get $mp)) (local.get $a7))
            (local.set $yp (i32.add (local.get $yp) (i32.const 64)))
            (local.set $bp (i32.add (local.get $bp) (i32.const 64)))
            (local.set $p (i32.add (local.get $p) (i32.const 16)))
            (br $panels)))
        (local.set $s (i32.add (local.get $s) (i32.const 2)))
        (br $pairs)))
    (if (i32.lt_u (local.get $s) (local.get $n))
      (then
        (call $matvec_packed
          (i32.add (local.get $y) (i32.mul (local.get $s) (local.get $mp)))
          (local.get $w)
          (i32.add (local.get $x) (i32.mul (local.get $s) (local.get $kb)))
          (local.get $b) (local.get $m) (local.get $k)))))

  ;; ---------------------------------------------------------------------------------------------
  ;; Cell updates for one stream, in place, given gi = W_ih x + b_ih and gh = W_hh h + b_hh
  ;; (G·H floats each, gates in PyTorch's order). gi is only read; gh is used as scratch and left
  ;; holding intermediate values. Each is a few passes over the gates (see the activations).

  ;; h = tanh(gi + gh) for H units.
  (func (export "rnn_tanh") (param $h i32) (param $gi i32) (param $gh i32) (param $n i32)
    (call $scaled_sum (local.get $gh) (local.get $gi) (local.get $gh) (local.get $n) (f32.const 2))
    (call $exp (local.get $gh) (local.get $gh) (local.get $n) (f32.const 0))
    (call $tanh_of_exp (local.get $h) (local.get $gh) (local.get $n)))

  ;; h = relu(gi + gh) for H units; pmax(0, v) is 0 for NaN, as `v > 0 ? v : 0` in JS.
  (func (export "rnn_relu") (param $h i32) (param $gi i32) (param $gh i32) (param $n i32)
    (local $j i32) (local $o i32) (local $w i32) (local $zero v128)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $j) (local.get $n)))
        (local.set $w (call $wide (local.get $j) (local.get $n)))
        (local.set $o (i32.shl (local.get $j) (i32.const 2)))
        (call $st (i32.add (local.get $h) (local.get $o))
          (f32x4.pmax (local.get $zero)
            (f32x4.add
              (call $ld (i32.add (local.get $gi) (local.get $o)) (local.get $w))
              (call $ld (i32.add (local.get $gh) (local.get $o)) (local.get $w))))
          (local.get $w))
        (local.set $j (i32.add (local.get $j) (call $stride (local.get $w))))
        (br $next))))

  ;; GRU for H units: r = σ(gi_r + gh_r), z = σ(gi_z + gh_z), n = tanh(gi_n + r gh_n),
  ;; h' = (1 - z) n + z h = n + z (h - n).
  (func (export "gru") (param $h i32) (param $gi i32) (param $gh i32) (param $n i32)
    (local $j i32) (local $o i32) (local $w i32) (local $g i32) (local $ghn i32) (local $gin i32)
    (local $a v128) (local $nn v128)
    (local.set $g (i32.shl (local.get $n) (i32.const 2))) ;; bytes per gate
    (local.set $gin (i32.add (local.get $gi) (i32.shl (local.get $g) (i32.const 1))))
    (local.set $ghn (i32.add (local.get $gh) (i32.shl (local.get $g) (i32.const 1))))
    ;; r and z into gh
    (call $scaled_sum (local.get $gh) (local.get $gi) (local.get $gh)
      (i32.shl (local.get $n) (i32.const 1)) (f32.const -1))
    (call $exp (local.get $gh) (local.get $gh) (i32.shl (local.get $n) (i32.const 1)) (f32.const 0))
    (call $sigmoid_of_exp (local.get $gh) (local.get $gh) (i32.shl (local.get $n) (i32.const 1)))
    ;; gh_n = 2 (gi_n + r gh_n), then n into gh_n
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $j) (local.get $n)))
        (local.set $w (call $wide (local.get $j) (local.get $n)))
        (local.set $o (i32.shl (local.get $j) (i32.const 2)))
        (local.set $a
          (f32x4.add (call $ld (i32.add (local.get $gin) (local.get $o)) (local.get $w))
            (f32x4.mul (call $ld (i32.add (local.get $gh) (local.get $o)) (local.get $w))
              (call $ld (i32.add (local.get $ghn) (local.get $o)) (local.get $w)))))
        (call $st (i32.add (local.get $ghn) (local.get $o))
          (f32x4.add (local.get $a) (local.get $a)) (local.get $w))
        (local.set $j (i32.add (local.get $j) (call $stride (local.get $w))))
        (br $next)))
    (call $exp (local.get $ghn) (local.get $ghn) (local.get $n) (f32.const 0))
    (call $tanh_of_exp (local.get $ghn) (local.get $ghn) (local.get $n))
    ;; h = n + z (h - n)
    (local.set $j (i32.const 0))
    (block $done2
      (loop $next2
        (br_if $done2 (i32.ge_u (local.get $j) (local.get $n)))
        (local.set $w (call $wide (local.get $j) (local.get $n)))
        (local.set $o (i32.shl (local.get $j) (i32.const 2)))
        (local.set $nn (call $ld (i32.add (local.get $ghn) (local.get $o)) (local.get $w)))
        (call $st (i32.add (local.get $h) (local.get $o))
          (f32x4.add (local.get $nn)
            (f32x4.mul
              (call $ld (i32.add (i32.add (local.get $gh) (local.get $g)) (local.get $o))
                (local.get $w))
              (f32x4.sub (call $ld (i32.add (local.get $h) (local.get $o)) (local.get $w))
                (local.get $nn))))
          (local.get $w))
        (local.set $j (i32.add (local.get $j) (call $stride (local.get $w))))
        (br $next2))))

  ;; LSTM for H units: gi and gh hold i, f, g, o (4H each); h and c are updated in place:
  ;; c' = σ(f) c + σ(i) tanh(g), h' = σ(o) tanh(c').
  (func (export "lstm") (param $h i32) (param $c i32) (param $gi i32) (param $gh i32) (param $n i32)
    (local $j i32) (local $o i32) (local $w i32) (local $g i32) (local $ghg i32) (local $gho i32)
    (local $cn v128)
    (local.set $g (i32.shl (local.get $n) (i32.const 2))) ;; bytes per gate
    (local.set $ghg (i32.add (local.get $gh) (i32.shl (local.get $g) (i32.const 1))))
    (local.set $gho (i32.add (local.get $ghg) (local.get $g)))
    ;; σ(i), σ(f), tanh(g), σ(o) into gh
    (call $scaled_sum (local.get $gh) (local.get $gi) (local.get $gh)
      (i32.shl (local.get $n) (i32.const 1)) (f32.const -1))
    (call $scaled_sum (local.get $ghg) (i32.add (local.get $gi) (i32.shl (local.get $g) (i32.const 1)))
      (local.get $ghg) (local.get $n) (f32.const 2))
    (call $scaled_sum (local.get $gho) (i32.add (local.get $gi) (i32.mul (local.get $g) (i32.const 3)))
      (local.get $gho) (local.get $n) (f32.const -1))
    (call $exp (local.get $gh) (local.get $gh) (i32.shl (local.get $n) (i32.const 2)) (f32.const 0))
    (call $sigmoid_of_exp (local.get $gh) (local.get $gh) (i32.shl (local.get $n) (i32.const 1)))
    (call $tanh_of_exp (local.get $ghg) (local.get $ghg) (local.get $n))
    (call $sigmoid_of_exp (local.get $gho) (local.get $gho) (local.get $n))
    ;; c' into c, and 2c' into gh_g for its tanh
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $j) (local.get $n)))
        (local.set $w (call $wide (local.get $j) (local.get $n)))
        (local.set $o (i32.shl (local.get $j) (i32.const 2)))
        (local.set $cn
          (f32x4.add
            (f32x4.mul
              (call $ld (i32.add (i32.add (local.get $gh) (local.get $g)) (local.get $o))
                (local.get $w))
              (call $ld (i32.add (local.get $c) (local.get $o)) (local.get $w)))
            (f32x4.mul
              (call $ld (i32.add (local.get $gh) (local.get $o)) (local.get $w))
              (call $ld (i32.add (local.get $ghg) (local.get $o)) (local.get $w)))))
        (call $st (i32.add (local.get $c) (local.get $o)) (local.get $cn) (local.get $w))
        (call $st (i32.add (local.get $ghg) (local.get $o))
          (f32x4.add (local.get $cn) (local.get $cn)) (local.get $w))
        (local.set $j (i32.add (local.get $j) (call $stride (local.get $w))))
        (br $next)))
    (call $exp (local.get $ghg) (local.get $ghg) (local.get $n) (f32.const 0))
    (call $tanh_of_exp (local.get $ghg) (local.get $ghg) (local.get $n))
    ;; h = σ(o) tanh(c')
    (local.set $j (i32.const 0))
    (block $done2
      (loop $next2
        (br_if $done2 (i32.ge_u (local.get $j) (local.get $n)))
        (local.set $w (call $wide (local.get $j) (local.get $n)))
        (local.set $o (i32.shl (local.get $j) (i32.const 2)))
        (call $st (i32.add (local.get $h) (local.get $o))
          (f32x4.mul
            (call $ld (i32.add (local.get $gho) (local.get $o)) (local.get $w))
            (call $ld (i32.add (local.get $ghg) (local.get $o)) (local.get $w)))
          (local.get $w))
        (local.set $j (i32.add (local.get $j) (call $stride (local.get $w))))
        (br $next2))))

  ;; ---------------------------------------------------------------------------------------------
  ;; y = softmax(x) for N ≥ 1 floats, the maximum subtracted first; x is only read.
  (func (export "softmax") (param $y i32) (param $x i32) (param $n i32)
    (local $j i32) (local $o i32) (local $w i32) (local $max v128) (local $sum v128) (local $e v128)
    (local $mx f32) (local $s f32) (local $inv v128)
    ;; the maximum: start from x[0] in every lane, so padding never wins
    (local.set $max (v128.load32_splat (local.get $x)))
    (block $done1
      (loop $l1
        (br_if $done1 (i32.ge_u (local.get $j) (local.get $n)))
        (local.set $o (i32.add (local.get $x) (i32.shl (local.get $j) (i32.const 2))))
        (if (i32.le_u (i32.add (local.get $j) (i32.const 4)) (local.get $n))
          (then
            (local.set $max (f32x4.max (local.get $max) (v128.load (local.get $o))))
            (local.set $j (i32.add (local.get $j) (i32.const 4))))
          (else
            (local.set $max (f32x4.max (local.get $max) (v128.load32_splat (local.get $o))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))))
        (br $l1)))
    (local.set $mx
      (f32.max
        (f32.max (f32x4.extract_lane 0 (local.get $max)) (f32x4.extract_lane 1 (local.get $max)))
        (f32.max (f32x4.extract_lane 2 (local.get $max)) (f32x4.extract_lane 3 (local.get $max)))))
    ;; e = exp(x - max) into y, summed: the vectors in lanes, the tail one float at a time
    (call $exp (local.get $y) (local.get $x) (local.get $n) (local.get $mx))
    (local.set $j (i32.const 0))
    (block $done2
      (loop $l2
        (br_if $done2 (i32.ge_u (local.get $j) (local.get $n)))
        (local.set $o (i32.add (local.get $y) (i32.shl (local.get $j) (i32.const 2))))
        (if (i32.le_u (i32.add (local.get $j) (i32.const 4)) (local.get $n))
          (then
            (local.set $sum (f32x4.add (local.get $sum) (v128.load (local.get $o))))
            (local.set $j (i32.add (local.get $j) (i32.const 4))))
          (else
            (local.set $s (f32.add (local.get $s) (f32.load (local.get $o))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))))
        (br $l2)))
    (local.set $inv
      (f32x4.splat (f32.div (f32.const 1) (f32.add (call $hsum (local.get $sum)) (local.get $s)))))
    (local.set $j (i32.const 0))
    (block $done3
      (loop $l3
        (br_if $done3 (i32.ge_u (local.get $j) (local.get $n)))
        (local.set $w (call $wide (local.get $j) (local.get $n)))
        (local.set $o (i32.add (local.get $y) (i32.shl (local.get $j) (i32.const 2))))
        (call $st (local.get $o) (f32x4.mul (call $ld (local.get $o) (local.get $w)) (local.get $inv))
          (local.get $w))
        (local.set $j (i32.add (local.get $j) (call $stride (local.get $w))))
        (br $l3))))

  ;; ---------------------------------------------------------------------------------------------
  ;; The indices of the k largest of N floats at $p into $best (k ≤ N i32s), largest first, the
  ;; lower index first among equal values: what topKInto (session.ts) gives, for values with no
  ;; NaN and no -∞, which the caller checks (the result is -1 otherwise, and it uses topKInto).
  ;; The values are copied to $scratch (N rounded up to 16, the padding -∞); then k times the
  ;; largest is found four lanes at a time, its first index taken and its value replaced by -∞.
  ;; No branch depends on the order of the values, which is what makes an insertion list slow.
  (func (export "top_k") (param $best i32) (param $p i32) (param $n i32) (param $k i32)
    (param $scratch i32) (result i32)
    (local $j i32) (local $o i32) (local $end i32) (local $r i32) (local $v v128) (local $bad v128)
    (local $m0 v128) (local $m1 v128) (local $m2 v128) (local $m3 v128) (local $ninf v128)
    (local $m f32) (local $at i32)
    (local.set $ninf (v128.const f32x4 -inf -inf -inf -inf))
    (local.set $end (i32.shl (i32.and (i32.add (local.get $n) (i32.const 15)) (i32.const -16))
      (i32.const 2)))
    ;; copy, padding with -∞; note any NaN (x ≠ x) or -∞
    (local.set $bad (v128.const i32x4 0 0 0 0))
    (block $copied
      (loop $copy
        (br_if $copied (i32.ge_u (local.get $j) (local.get $n)))
        (local.set $o (i32.shl (local.get $j) (i32.const 2)))
        (local.set $v (call $ld (i32.add (local.get $p) (local.get $o)) (call $wide (local.get $j) (local.get $n))))
        (local.set $bad (v128.or (local.get $bad)
          (v128.or (f32x4.ne (local.get $v) (local.get $v)) (f32x4.eq (local.get $v) (local.get $ninf)))))
        (if (call $wide (local.get $j) (local.get $n))
          (then
            (v128.store (i32.add (local.get $scratch) (local.get $o)) (local.get $v))
            (local.set $j (i32.add (local.get $j) (i32.const 4))))
          (else
            (f32.store (i32.add (local.get $scratch) (local.get $o)) (f32x4.extract_lane 0 (local.get $v)))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))))
        (br $copy)))
    ;; (a one-lane load's other lanes are 0, which is neither)
    (if (v128.any_true (local.get $bad)) (then (return (i32.const -1))))
    (block $padded
      (loop $pad
        (br_if $padded (i32.ge_u (i32.shl (local.get $j) (i32.const 2)) (local.get $end)))
        (f32.store (i32.add (local.get $scratch) (i32.shl (local.get $j) (i32.const 2)))
          (f32.const -inf))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $pad)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $r) (local.get $k)))
        ;; the largest: sixteen values per pass into four accumulators
        (local.set $m0 (local.get $ninf))
        (local.set $m1 (local.get $ninf))
        (local.set $m2 (local.get $ninf))
        (local.set $m3 (local.get $ninf))
        (local.set $o (local.get $scratch))
        (local.set $at (i32.add (local.get $scratch) (local.get $end)))
        (block $maxed
          (loop $max
            (br_if $maxed (i32.ge_u (local.get $o) (local.get $at)))
            (local.set $m0 (f32x4.pmax (local.get $m0) (v128.load offset=0 (local.get $o))))
            (local.set $m1 (f32x4.pmax (local.get $m1) (v128.load offset=16 (local.get $o))))
            (local.set $m2 (f32x4.pmax (local.get $m2) (v128.load offset=32 (local.get $o))))
            (local.set $m3 (f32x4.pmax (local.get $m3) (v128.load offset=48 (local.get $o))))
            (local.set $o (i32.add (local.get $o) (i32.const 64)))
            (br $max)))
        (local.set $m0 (f32x4.pmax (f32x4.pmax (local.get $m0) (local.get $m1))
          (f32x4.pmax (local.get $m2) (local.get $m3))))
        (local.set $m (f32.max
          (f32.max (f32x4.extract_lane 0 (local.get $m0)) (f32x4.extract_lane 1 (local.get $m0)))
          (f32.max (f32x4.extract_lane 2 (local.get $m0)) (f32x4.extract_lane 3 (local.get $m0)))))
        (local.set $m0 (f32x4.splat (local.get $m)))
        ;; its first index: the first vector with a lane equal to it, then that vector's lanes
        (local.set $o (i32.const 0))
        (block $found
          (loop $find
            (br_if $found (v128.any_true (f32x4.eq (local.get $m0)
              (v128.load (i32.add (local.get $scratch) (local.get $o))))))
            (local.set $o (i32.add (local.get $o) (i32.const 16)))
            (br $find)))
        (local.set $at (i32.add (local.get $scratch) (local.get $o)))
        (block $lane
          (loop $lanes
            (br_if $lane (f32.eq (f32.load (local.get $at)) (local.get $m)))
            (local.set $at (i32.add (local.get $at) (i32.const 4)))
            (br $lanes)))
        (i32.store (i32.add (local.get $best) (i32.shl (local.get $r) (i32.const 2)))
          (i32.shr_u (i32.sub (local.get $at) (local.get $scratch)) (i32.const 2)))
        (f32.store (local.get $at) (f32.const -inf))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $next)))
    (local.get $k))
)
