;; M rows, N columns, K the reduced dimension, R rows of a batch step, H hidden. All f32, row-major.
;; Training kernels in WebAssembly SIMD: a matrix product over strided operands (every product of
;; a TBPTT window's forward and backward) and the elementwise halves of the rnn, gru and lstm
;; cells, forward and backward, four hidden units at a time. Every function takes byte offsets
;; into the one imported memory and sizes in elements; nothing is allocated. The memory is
;; shared, so two threads can run these kernels side by side on disjoint outputs.
;;
;; Built into train.wasm by build.ts (wabt: SIMD, threads), and into train_relaxed.wasm with the
;; gemm's eight multiply-adds `(f32x4.add (local.get $cRJ) (f32x4.mul (local.get $x) (local.get
;; $bJ)))` rewritten as `f32x4.relaxed_madd` (an FMA on x64): keep them in exactly that form.
;; test/simd_train_test.ts checks both committed binaries against this source. The cell kernels
;; need H to be a multiple of 4.
(module
  (import "env" "memory" (memory 1 65536 shared))

  ;; ---------------------------------------------------------------------------------------------
  ;; Activations on four lanes: e^x by range reduction (x = n ln 2 + r, ln 2 in two parts) and a
  ;; degree-6 polynomial for e^r, with 2^n built in the exponent bits; σ and tanh from it. Within
  ;; 1e-6 absolute of Math's (test/simd_train_test.ts checks it).

  (func $exp (param $x v128) (result v128)
    (local $n v128) (local $r v128) (local $p v128)
    (local.set $x
      (f32x4.max
        (f32x4.min (local.get $x) (v128.const f32x4 88 88 88 88))
        (v128.const f32x4 -87.33654 -87.33654 -87.33654 -87.33654)))
    (local.set $n
      (f32x4.nearest (f32x4.mul (local.get $x)
        (v128.const f32x4 1.44269504088896341 1.44269504088896341
                          1.44269504088896341 1.44269504088896341))))
    (local.set $r
      (f32x4.sub
        (f32x4.sub (local.get $x)
          (f32x4.mul (local.get $n) (v128.const f32x4 0.693359375 0.693359375
                                                      0.693359375 0.693359375)))
        (f32x4.mul (local.get $n) (v128.const f32x4 -2.12194440e-4 -2.12194440e-4
                                                    -2.12194440e-4 -2.12194440e-4))))
    (local.set $p (v128.const f32x4 1.9875691500e-4 1.9875691500e-4
                                    1.9875691500e-4 1.9875691500e-4))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r))
      (v128.const f32x4 1.3981999507e-3 1.3981999507e-3 1.3981999507e-3 1.3981999507e-3)))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r))
      (v128.const f32x4 8.3334519073e-3 8.3334519073e-3 8.3334519073e-3 8.3334519073e-3)))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r))
      (v128.const f32x4 4.1665795894e-2 4.1665795894e-2 4.1665795894e-2 4.1665795894e-2)))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r))
      (v128.const f32x4 1.6666665459e-1 1.6666665459e-1 1.6666665459e-1 1.6666665459e-1)))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r))
      (v128.const f32x4 5.0000001201e-1 5.0000001201e-1 5.0000001201e-1 5.0000001201e-1)))
    (local.set $p
      (f32x4.add
        (f32x4.add (f32x4.mul (local.get $p) (f32x4.mul (local.get $r) (local.get $r)))
          (local.get $r))
        (v128.const f32x4 1 1 1 1)))
    (f32x4.mul (local.get $p)
      (i32x4.shl
        (i32x4.add (i32x4.trunc_sat_f32x4_s (local.get $n)) (v128.const i32x4 127 127 127 127))
        (i32.const 23))))

  (func $sigmoid (param $x v128) (result v128)
    (f32x4.div (v128.const f32x4 1 1 1 1)
      (f32x4.add (v128.const f32x4 1 1 1 1) (call $exp (f32x4.neg (local.get $x))))))

  ;; tanh: an odd polynomial for |x| < 0.625 (no cancellation near 0), else
  ;; sign(x) (1 - 2 / (e^{2|x|} + 1)).
  (func $tanh (param $x v128) (result v128)
    (local $a v128) (local $z v128) (local $small v128) (local $big v128)
    (local.set $a (f32x4.abs (local.get $x)))
    (local.set $z (f32x4.mul (local.get $x) (local.get $x)))
    (local.set $small (v128.const f32x4 -5.70498872745e-3 -5.70498872745e-3
                                        -5.70498872745e-3 -5.70498872745e-3))
    (local.set $small (f32x4.add (f32x4.mul (local.get $small) (local.get $z))
      (v128.const f32x4 2.06390887954e-2 2.06390887954e-2 2.06390887954e-2 2.06390887954e-2)))
    (local.set $small (f32x4.add (f32x4.mul (local.get $small) (local.get $z))
      (v128.const f32x4 -5.37397155531e-2 -5.37397155531e-2
                        -5.37397155531e-2 -5.37397155531e-2)))
    (local.set $small (f32x4.add (f32x4.mul (local.get $small) (local.get $z))
      (v128.const f32x4 1.33314422036e-1 1.33314422036e-1 1.33314422036e-1 1.33314422036e-1)))
    (local.set $small (f32x4.add (f32x4.mul (local.get $small) (local.get $z))
      (v128.const f32x4 -3.33332819422e-1 -3.33332819422e-1
                        -3.33332819422e-1 -3.33332819422e-1)))
    (local.set $small
      (f32x4.add (f32x4.mul (f32x4.mul (local.get $small) (local.get $z)) (local.get $x))
        (local.get $x)))
    (local.set $big
      (f32x4.sub (v128.const f32x4 1 1 1 1)
        (f32x4.div (v128.const f32x4 2 2 2 2)
          (f32x4.add (call $exp (f32x4.add (local.get $a) (local.get $a)))
            (v128.const f32x4 1 1 1 1)))))
    (local.set $big
      (v128.bitselect (local.get $x) (local.get $big)
        (v128.const i32x4 0x80000000 0x80000000 0x80000000 0x80000000)))
    (v128.bitselect (local.get $small) (local.get $big)
      (f32x4.lt (local.get $a) (v128.const f32x4 0.625 0.625 0.625 0.625))))

  ;; y = σ(x), y = tanh(x) for N floats, N a multiple of 4 (for the accuracy test).
  (func (export "sigmoid") (param $y i32) (param $x i32) (param $n i32)
    (local $e i32)
    (local.set $e (i32.add (local.get $x) (i32.shl (local.get $n) (i32.const 2))))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $x) (local.get $e)))
      (v128.store (local.get $y) (call $sigmoid (v128.load (local.get $x))))
      (local.set $x (i32.add (local.get $x) (i32.const 16)))
      (local.set $y (i32.add (local.get $y) (i32.const 16)))
      (br $next))))

  (func (export "tanh") (param $y i32) (param $x i32) (param $n i32)
    (local $e i32)
    (local.set $e (i32.add (local.get $x) (i32.shl (local.get $n) (i32.const 2))))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $x) (local.get $e)))
      (v128.store (local.get $y) (call $tanh (v128.load (local.get $x))))
      (local.set $x (i32.add (local.get $x) (i32.const 16)))
      (local.set $y (i32.add (local.get $y) (i32.const 16)))
      (br $next))))

  ;; ---------------------------------------------------------------------------------------------
  ;; C (M, N) = or += A (M, K) B (K, N), every operand strided, so one kernel serves A B, A B^T
  ;; (B packed) and A^T B:
  ;;   A[i, k] at a + i sa + k ska;   B[k, 8p + j] at b + k skb + p spb + 4j (j < 8);
  ;;   C[i, j] at c + i ldc + 4j.
  ;; A 4x8 block of C lives in eight registers while k runs; each step loads one row of B's
  ;; 8-column panel (two vectors) and broadcasts four entries of A. Blocks walk 16 rows of A
  ;; (which stay in L1) against every panel of B, then the next 16 rows. Past the last row of A
  ;; the row pointers repeat row i, and past the last column the panel reads on (callers leave
  ;; 32 bytes of slack after B): the extra lanes are computed and dropped, and partial blocks
  ;; are written through `scratch` (128 bytes, one per thread).
  (func (export "gemm")
    (param $c i32) (param $ldc i32)
    (param $a i32) (param $sa i32) (param $ska i32)
    (param $b i32) (param $skb i32) (param $spb i32)
    (param $m i32) (param $n i32) (param $k i32)
    (param $acc i32) (param $scratch i32)
    (local $i0 i32) (local $ie i32) (local $i i32) (local $j i32) (local $p i32)
    (local $a0 i32) (local $a1 i32) (local $a2 i32) (local $a3 i32) (local $bp i32)
    (local $kk i32) (local $rows i32) (local $cols i32) (local $cp i32) (local $r i32)
    (local $q i32) (local $src i32) (local $dst i32)
    (local $c00 v128) (local $c01 v128) (local $c10 v128) (local $c11 v128)
    (local $c20 v128) (local $c21 v128) (local $c30 v128) (local $c31 v128)
    (local $b0 v128) (local $b1 v128) (local $x v128)
    (block $chunksdone (loop $chunks
      (br_if $chunksdone (i32.ge_u (local.get $i0) (local.get $m)))
      (local.set $ie (select (i32.add (local.get $i0) (i32.const 16)) (local.get $m)
        (i32.lt_u (i32.add (local.get $i0) (i32.const 16)) (local.get $m))))
      (local.set $j (i32.const 0))
      (local.set $p (local.get $b))
      (block $panelsdone (loop $panels
        (br_if $panelsdone (i32.ge_u (local.get $j) (local.get $n)))
        (local.set $i (local.get $i0))
        (block $rowsdone (loop $rowblocks
          (br_if $rowsdone (i32.ge_u (local.get $i) (local.get $ie)))
          (local.set $a0 (i32.add (local.get $a) (i32.mul (local.get $i) (local.get $sa))))
          (local.set $a1 (select (i32.add (local.get $a0) (local.get $sa)) (local.get $a0)
            (i32.lt_u (i32.add (local.get $i) (i32.const 1)) (local.get $m))))
          (local.set $a2 (select (i32.add (local.get $a1) (local.get $sa)) (local.get $a0)
            (i32.lt_u (i32.add (local.get $i) (i32.const 2)) (local.get $m))))
          (local.set $a3 (select (i32.add (local.get $a2) (local.get $sa)) (local.get $a0)
            (i32.lt_u (i32.add (local.get $i) (i32.const 3)) (local.get $m))))
          (local.set $bp (local.get $p))
          (local.set $c00 (v128.const i32x4 0 0 0 0))
          (local.set $c01 (v128.const i32x4 0 0 0 0))
          (local.set $c10 (v128.const i32x4 0 0 0 0))
          (local.set $c11 (v128.const i32x4 0 0 0 0))
          (local.set $c20 (v128.const i32x4 0 0 0 0))
          (local.set $c21 (v128.const i32x4 0 0 0 0))
          (local.set $c30 (v128.const i32x4 0 0 0 0))
          (local.set $c31 (v128.const i32x4 0 0 0 0))
          (local.set $kk (local.get $k))
          (block $kdone (loop $kloop
            (br_if $kdone (i32.eqz (local.get $kk)))
            (local.set $b0 (v128.load (local.get $bp)))
            (local.set $b1 (v128.load offset=16 (local.get $bp)))
            (local.set $x (v128.load32_splat (local.get $a0)))
            (local.set $c00 (f32x4.add (local.get $c00) (f32x4.mul (local.get $x) (local.get $b0))))
            (local.set $c01 (f32x4.add (local.get $c01) (f32x4.mul (local.get $x) (local.get $b1))))
            (local.set $x (v128.load32_splat (local.get $a1)))
            (local.set $c10 (f32x4.add (local.get $c10) (f32x4.mul (local.get $x) (local.get $b0))))
            (local.set $c11 (f32x4.add (local.get $c11) (f32x4.mul (local.get $x) (local.get $b1))))
            (local.set $x (v128.load32_splat (local.get $a2)))
            (local.set $c20 (f32x4.add (local.get $c20) (f32x4.mul (local.get $x) (local.get $b0))))
            (local.set $c21 (f32x4.add (local.get $c21) (f32x4.mul (local.get $x) (local.get $b1))))
            (local.set $x (v128.load32_splat (local.get $a3)))
            (local.set $c30 (f32x4.add (local.get $c30) (f32x4.mul (local.get $x) (local.get $b0))))
            (local.set $c31 (f32x4.add (local.get $c31) (f32x4.mul (local.get $x) (local.get $b1))))
            (local.set $a0 (i32.add (local.get $a0) (local.get $ska)))
            (local.set $a1 (i32.add (local.get $a1) (local.get $ska)))
            (local.set $a2 (i32.add (local.get $a2) (local.get $ska)))
            (local.set $a3 (i32.add (local.get $a3) (local.get $ska)))
            (local.set $bp (i32.add (local.get $bp) (local.get $skb)))
            (local.set $kk (i32.sub (local.get $kk) (i32.const 1)))
            (br $kloop)))
          (local.set $rows (i32.sub (local.get $m) (local.get $i)))
          (local.set $cols (i32.sub (local.get $n) (local.get $j)))
          (local.set $cp (i32.add (i32.add (local.get $c) (i32.mul (local.get $i) (local.get $ldc)))
            (i32.shl (local.get $j) (i32.const 2))))
          (if (i32.and (i32.ge_u (local.get $rows) (i32.const 4))
                       (i32.ge_u (local.get $cols) (i32.const 8)))
            (then
              (if (local.get $acc)
                (then
                  (local.set $c00 (f32x4.add (local.get $c00) (v128.load (local.get $cp))))
                  (local.set $c01 (f32x4.add (local.get $c01) (v128.load offset=16 (local.get $cp))))
                  (local.set $q (i32.add (local.get $cp) (local.get $ldc)))
                  (local.set $c10 (f32x4.add (local.get $c10) (v128.load (local.get $q))))
                  (local.set $c11 (f32x4.add (local.get $c11) (v128.load offset=16 (local.get $q))))
                  (local.set $q (i32.add (local.get $q) (local.get $ldc)))
                  (local.set $c20 (f32x4.add (local.get $c20) (v128.load (local.get $q))))
                  (local.set $c21 (f32x4.add (local.get $c21) (v128.load offset=16 (local.get $q))))
                  (local.set $q (i32.add (local.get $q) (local.get $ldc)))
                  (local.set $c30 (f32x4.add (local.get $c30) (v128.load (local.get $q))))
                  (local.set $c31 (f32x4.add (local.get $c31) (v128.load offset=16 (local.get $q))))))
              (v128.store (local.get $cp) (local.get $c00))
              (v128.store offset=16 (local.get $cp) (local.get $c01))
              (local.set $cp (i32.add (local.get $cp) (local.get $ldc)))
              (v128.store (local.get $cp) (local.get $c10))
              (v128.store offset=16 (local.get $cp) (local.get $c11))
              (local.set $cp (i32.add (local.get $cp) (local.get $ldc)))
              (v128.store (local.get $cp) (local.get $c20))
              (v128.store offset=16 (local.get $cp) (local.get $c21))
              (local.set $cp (i32.add (local.get $cp) (local.get $ldc)))
              (v128.store (local.get $cp) (local.get $c30))
              (v128.store offset=16 (local.get $cp) (local.get $c31)))
            (else
              ;; a partial block: through the scratch, one float at a time
              (v128.store offset=0 (local.get $scratch) (local.get $c00))
              (v128.store offset=16 (local.get $scratch) (local.get $c01))
              (v128.store offset=32 (local.get $scratch) (local.get $c10))
              (v128.store offset=48 (local.get $scratch) (local.get $c11))
              (v128.store offset=64 (local.get $scratch) (local.get $c20))
              (v128.store offset=80 (local.get $scratch) (local.get $c21))
              (v128.store offset=96 (local.get $scratch) (local.get $c30))
              (v128.store offset=112 (local.get $scratch) (local.get $c31))
              (if (i32.gt_u (local.get $rows) (i32.const 4)) (then (local.set $rows (i32.const 4))))
              (if (i32.gt_u (local.get $cols) (i32.const 8)) (then (local.set $cols (i32.const 8))))
              (local.set $r (i32.const 0))
              (block $srdone (loop $sr
                (br_if $srdone (i32.ge_u (local.get $r) (local.get $rows)))
                (local.set $q (i32.const 0))
                (block $sqdone (loop $sq
                  (br_if $sqdone (i32.ge_u (local.get $q) (local.get $cols)))
                  (local.set $src (i32.add (local.get $scratch)
                    (i32.shl (i32.add (i32.shl (local.get $r) (i32.const 3)) (local.get $q))
                      (i32.const 2))))
                  (local.set $dst (i32.add (i32.add (local.get $cp)
                    (i32.mul (local.get $r) (local.get $ldc))) (i32.shl (local.get $q) (i32.const 2))))
                  (f32.store (local.get $dst)
                    (select
                      (f32.add (f32.load (local.get $dst)) (f32.load (local.get $src)))
                      (f32.load (local.get $src))
                      (local.get $acc)))
                  (local.set $q (i32.add (local.get $q) (i32.const 1)))
                  (br $sq)))
                (local.set $r (i32.add (local.get $r) (i32.const 1)))
                (br $sr)))))
          (local.set $i (i32.add (local.get $i) (i32.const 4)))
          (br $rowblocks)))
        (local.set $j (i32.add (local.get $j) (i32.const 8)))
        (local.set $p (i32.add (local.get $p) (local.get $spb)))
        (br $panels)))
      (local.set $i0 (i32.add (local.get $i0) (i32.const 16)))
      (br $chunks))))

  ;; Packs W (N, K) row-major into 8-column panels of W^T: dst[p][k][j] = W[8p + j, k], zero
  ;; past row N, so `gemm` computes A W^T with skb = 32 and spb = 32 K.
  (func (export "pack_t") (param $dst i32) (param $w i32) (param $n i32) (param $k i32)
    (local $p i32) (local $j i32) (local $kk i32) (local $row i32) (local $src i32)
    (local $stride i32)
    (local.set $stride (i32.shl (local.get $k) (i32.const 2)))
    (block $pdone (loop $panels
      (br_if $pdone (i32.ge_u (local.get $p) (local.get $n)))
      (local.set $kk (i32.const 0))
      (block $kdone (loop $ks
        (br_if $kdone (i32.ge_u (local.get $kk) (local.get $k)))
        (local.set $j (i32.const 0))
        (block $jdone (loop $js
          (br_if $jdone (i32.ge_u (local.get $j) (i32.const 8)))
          (local.set $row (i32.add (local.get $p) (local.get $j)))
          (f32.store (local.get $dst)
            (if (result f32) (i32.lt_u (local.get $row) (local.get $n))
              (then (f32.load (i32.add (i32.add (local.get $w)
                (i32.mul (local.get $row) (local.get $stride))) (i32.shl (local.get $kk) (i32.const 2)))))
              (else (f32.const 0))))
          (local.set $dst (i32.add (local.get $dst) (i32.const 4)))
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br $js)))
        (local.set $kk (i32.add (local.get $kk) (i32.const 1)))
        (br $ks)))
      (local.set $p (i32.add (local.get $p) (i32.const 8)))
      (br $panels))))

  ;; y[0..N) += x[0..N), any N.
  (func (export "add") (param $y i32) (param $x i32) (param $n i32)
    (local $e i32) (local $e4 i32)
    (local.set $e (i32.add (local.get $x) (i32.shl (local.get $n) (i32.const 2))))
    (local.set $e4 (i32.add (local.get $x) (i32.shl (i32.and (local.get $n) (i32.const -4))
      (i32.const 2))))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $x) (local.get $e4)))
      (v128.store (local.get $y) (f32x4.add (v128.load (local.get $y)) (v128.load (local.get $x))))
      (local.set $x (i32.add (local.get $x) (i32.const 16)))
      (local.set $y (i32.add (local.get $y) (i32.const 16)))
      (br $next)))
    (block $tdone (loop $tail
      (br_if $tdone (i32.ge_u (local.get $x) (local.get $e)))
      (f32.store (local.get $y) (f32.add (f32.load (local.get $y)) (f32.load (local.get $x))))
      (local.set $x (i32.add (local.get $x) (i32.const 4)))
      (local.set $y (i32.add (local.get $y) (i32.const 4)))
      (br $tail))))

  ;; y (N) += Σ_r A[r, :] for A (M, N) row-major, N a multiple of 4: a bias gradient.
  (func (export "colsum") (param $y i32) (param $a i32) (param $m i32) (param $n i32)
    (local $j i32) (local $r i32) (local $s v128) (local $p i32) (local $stride i32)
    (local.set $stride (i32.shl (local.get $n) (i32.const 2)))
    (block $jdone (loop $js
      (br_if $jdone (i32.ge_u (local.get $j) (local.get $stride)))
      (local.set $s (v128.load (i32.add (local.get $y) (local.get $j))))
      (local.set $p (i32.add (local.get $a) (local.get $j)))
      (local.set $r (local.get $m))
      (block $rdone (loop $rs
        (br_if $rdone (i32.eqz (local.get $r)))
        (local.set $s (f32x4.add (local.get $s) (v128.load (local.get $p))))
        (local.set $p (i32.add (local.get $p) (local.get $stride)))
        (local.set $r (i32.sub (local.get $r) (i32.const 1)))
        (br $rs)))
      (v128.store (i32.add (local.get $y) (local.get $j)) (local.get $s))
      (local.set $j (i32.add (local.get $j) (i32.const 16)))
      (br $js))))

  ;; ---------------------------------------------------------------------------------------------
  ;; Cells, one step of R rows. On entry `g` holds the input-side pre-activations of the step
  ;; (R, G H) without b_ih when `bi` is given separately, `gh` the recurrent products (R, G H)
  ;; without b_hh; the kernels add both biases, apply the activations and leave the activated
  ;; gates in `g`, as the TypeScript cells do.

  ;; Elman: h = f(g + b_ih + gh + b_hh), f = tanh (relu = 0) or relu; g keeps h.
  (func (export "rnn_fwd")
    (param $g i32) (param $gh i32) (param $bi i32) (param $bh i32) (param $hn i32)
    (param $rows i32) (param $h i32) (param $relu i32)
    (local $o i32) (local $h4 i32) (local $v v128)
    (local.set $h4 (i32.shl (local.get $h) (i32.const 2)))
    (block $rdone (loop $rs
      (br_if $rdone (i32.eqz (local.get $rows)))
      (local.set $o (i32.const 0))
      (block $jdone (loop $js
        (br_if $jdone (i32.ge_u (local.get $o) (local.get $h4)))
        (local.set $v
          (f32x4.add
            (f32x4.add (v128.load (i32.add (local.get $g) (local.get $o)))
              (v128.load (i32.add (local.get $bi) (local.get $o))))
            (f32x4.add (v128.load (i32.add (local.get $gh) (local.get $o)))
              (v128.load (i32.add (local.get $bh) (local.get $o))))))
        (local.set $v
          (if (result v128) (local.get $relu)
            (then (f32x4.max (local.get $v) (v128.const f32x4 0 0 0 0)))
            (else (call $tanh (local.get $v)))))
        (v128.store (i32.add (local.get $g) (local.get $o)) (local.get $v))
        (v128.store (i32.add (local.get $hn) (local.get $o)) (local.get $v))
        (local.set $o (i32.add (local.get $o) (i32.const 16)))
        (br $js)))
      (local.set $g (i32.add (local.get $g) (local.get $h4)))
      (local.set $gh (i32.add (local.get $gh) (local.get $h4)))
      (local.set $hn (i32.add (local.get $hn) (local.get $h4)))
      (local.set $rows (i32.sub (local.get $rows) (i32.const 1)))
      (br $rs))))

  ;; forward: h = f(pre), so dpre = (dh + dy) f'(pre), f' = 1 - h² (tanh) or [h > 0] (relu).
  ;; Writes dpre (R, H) to `dg`; N = R H floats, a multiple of 4.
  (func (export "rnn_bwd")
    (param $dg i32) (param $g i32) (param $dh i32) (param $dy i32) (param $n i32) (param $relu i32)
    (local $e i32) (local $y v128) (local $d v128)
    (local.set $e (i32.add (local.get $dg) (i32.shl (local.get $n) (i32.const 2))))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $dg) (local.get $e)))
      (local.set $y (v128.load (local.get $g)))
      (local.set $d (f32x4.add (v128.load (local.get $dh)) (v128.load (local.get $dy))))
      (v128.store (local.get $dg)
        (if (result v128) (local.get $relu)
          (then (v128.and (local.get $d)
            (f32x4.gt (local.get $y) (v128.const f32x4 0 0 0 0))))
          (else (f32x4.mul (local.get $d)
            (f32x4.sub (v128.const f32x4 1 1 1 1) (f32x4.mul (local.get $y) (local.get $y)))))))
      (local.set $dg (i32.add (local.get $dg) (i32.const 16)))
      (local.set $g (i32.add (local.get $g) (i32.const 16)))
      (local.set $dh (i32.add (local.get $dh) (i32.const 16)))
      (local.set $dy (i32.add (local.get $dy) (i32.const 16)))
      (br $next))))

  ;; GRU, gates r, z, n:
  ;;   r = σ(gi_r + gh_r), z = σ(gi_z + gh_z), n = tanh(gi_n + r ghn), ghn = W_hn h + b_hn,
  ;;   h' = (1 - z) n + z h.   g keeps r, z, n; aux (R, H) keeps ghn.
  (func (export "gru_fwd")
    (param $g i32) (param $gh i32) (param $bi i32) (param $bh i32) (param $hp i32) (param $hn i32)
    (param $aux i32) (param $rows i32) (param $h i32)
    (local $o i32) (local $h4 i32) (local $g3 i32) (local $r v128) (local $z v128) (local $n v128)
    (local $ghn v128) (local $p i32) (local $q i32)
    (local.set $h4 (i32.shl (local.get $h) (i32.const 2)))
    (local.set $g3 (i32.mul (local.get $h4) (i32.const 3)))
    (block $rdone (loop $rs
      (br_if $rdone (i32.eqz (local.get $rows)))
      (local.set $o (i32.const 0))
      (block $jdone (loop $js
        (br_if $jdone (i32.ge_u (local.get $o) (local.get $h4)))
        (local.set $p (i32.add (local.get $g) (local.get $o)))
        (local.set $q (i32.add (local.get $gh) (local.get $o)))
        (local.set $r (call $sigmoid
          (f32x4.add
            (f32x4.add (v128.load (local.get $p)) (v128.load (i32.add (local.get $bi) (local.get $o))))
            (f32x4.add (v128.load (local.get $q)) (v128.load (i32.add (local.get $bh) (local.get $o)))))))
        (local.set $p (i32.add (local.get $p) (local.get $h4)))
        (local.set $q (i32.add (local.get $q) (local.get $h4)))
        (local.set $z (call $sigmoid
          (f32x4.add
            (f32x4.add (v128.load (local.get $p))
              (v128.load (i32.add (i32.add (local.get $bi) (local.get $h4)) (local.get $o))))
            (f32x4.add (v128.load (local.get $q))
              (v128.load (i32.add (i32.add (local.get $bh) (local.get $h4)) (local.get $o)))))))
        (local.set $p (i32.add (local.get $p) (local.get $h4)))
        (local.set $q (i32.add (local.get $q) (local.get $h4)))
        (local.set $ghn (f32x4.add (v128.load (local.get $q))
          (v128.load (i32.add (i32.add (local.get $bh) (i32.shl (local.get $h4) (i32.const 1)))
            (local.get $o)))))
        (local.set $n (call $tanh
          (f32x4.add
            (f32x4.add (v128.load (local.get $p))
              (v128.load (i32.add (i32.add (local.get $bi) (i32.shl (local.get $h4) (i32.const 1)))
                (local.get $o))))
            (f32x4.mul (local.get $r) (local.get $ghn)))))
        (v128.store (i32.add (local.get $g) (local.get $o)) (local.get $r))
        (v128.store (i32.sub (local.get $p) (local.get $h4)) (local.get $z))
        (v128.store (local.get $p) (local.get $n))
        (v128.store (i32.add (local.get $aux) (local.get $o)) (local.get $ghn))
        (v128.store (i32.add (local.get $hn) (local.get $o))
          (f32x4.add
            (f32x4.mul (f32x4.sub (v128.const f32x4 1 1 1 1) (local.get $z)) (local.get $n))
            (f32x4.mul (local.get $z) (v128.load (i32.add (local.get $hp) (local.get $o))))))
        (local.set $o (i32.add (local.get $o) (i32.const 16)))
        (br $js)))
      (local.set $g (i32.add (local.get $g) (local.get $g3)))
      (local.set $gh (i32.add (local.get $gh) (local.get $g3)))
      (local.set $hp (i32.add (local.get $hp) (local.get $h4)))
      (local.set $hn (i32.add (local.get $hn) (local.get $h4)))
      (local.set $aux (i32.add (local.get $aux) (local.get $h4)))
      (local.set $rows (i32.sub (local.get $rows) (i32.const 1)))
      (br $rs))))

  ;; GRU backward of one step. dht = dh + dy;
  ;;   forward: h' = (1 - z) n + z h, so dn = dht (1 - z), dz = dht (h - n), dh = dht z
  ;;   forward: n = tanh(gi_n + r ghn), so dn_raw = dn (1 - n²), dr = dn_raw ghn
  ;; Writes dgi = [dr_raw, dz_raw, dn_raw] and dgh = [dr_raw, dz_raw, dn_raw r] (R, 3H) and
  ;; dh = dht z; the caller then adds dgh W_hh to dh.
  (func (export "gru_bwd")
    (param $dgi i32) (param $dgh i32) (param $g i32) (param $aux i32) (param $hp i32)
    (param $dh i32) (param $dy i32) (param $rows i32) (param $h i32)
    (local $o i32) (local $h4 i32) (local $g3 i32) (local $r v128) (local $z v128) (local $n v128)
    (local $dht v128) (local $dnraw v128) (local $drraw v128) (local $dzraw v128) (local $p i32)
    (local.set $h4 (i32.shl (local.get $h) (i32.const 2)))
    (local.set $g3 (i32.mul (local.get $h4) (i32.const 3)))
    (block $rdone (loop $rs
      (br_if $rdone (i32.eqz (local.get $rows)))
      (local.set $o (i32.const 0))
      (block $jdone (loop $js
        (br_if $jdone (i32.ge_u (local.get $o) (local.get $h4)))
        (local.set $p (i32.add (local.get $g) (local.get $o)))
        (local.set $r (v128.load (local.get $p)))
        (local.set $z (v128.load (i32.add (local.get $p) (local.get $h4))))
        (local.set $n (v128.load (i32.add (local.get $p) (i32.shl (local.get $h4) (i32.const 1)))))
        (local.set $dht (f32x4.add (v128.load (i32.add (local.get $dh) (local.get $o)))
          (v128.load (i32.add (local.get $dy) (local.get $o)))))
        (local.set $dnraw
          (f32x4.mul
            (f32x4.mul (local.get $dht) (f32x4.sub (v128.const f32x4 1 1 1 1) (local.get $z)))
            (f32x4.sub (v128.const f32x4 1 1 1 1) (f32x4.mul (local.get $n) (local.get $n)))))
        (local.set $drraw
          (f32x4.mul
            (f32x4.mul (f32x4.mul (local.get $dnraw) (v128.load (i32.add (local.get $aux) (local.get $o))))
              (local.get $r))
            (f32x4.sub (v128.const f32x4 1 1 1 1) (local.get $r))))
        (local.set $dzraw
          (f32x4.mul
            (f32x4.mul
              (f32x4.mul (local.get $dht)
                (f32x4.sub (v128.load (i32.add (local.get $hp) (local.get $o))) (local.get $n)))
              (local.get $z))
            (f32x4.sub (v128.const f32x4 1 1 1 1) (local.get $z))))
        (local.set $p (i32.add (local.get $dgi) (local.get $o)))
        (v128.store (local.get $p) (local.get $drraw))
        (v128.store (i32.add (local.get $p) (local.get $h4)) (local.get $dzraw))
        (v128.store (i32.add (local.get $p) (i32.shl (local.get $h4) (i32.const 1))) (local.get $dnraw))
        (local.set $p (i32.add (local.get $dgh) (local.get $o)))
        (v128.store (local.get $p) (local.get $drraw))
        (v128.store (i32.add (local.get $p) (local.get $h4)) (local.get $dzraw))
        (v128.store (i32.add (local.get $p) (i32.shl (local.get $h4) (i32.const 1)))
          (f32x4.mul (local.get $dnraw) (local.get $r)))
        (v128.store (i32.add (local.get $dh) (local.get $o)) (f32x4.mul (local.get $dht) (local.get $z)))
        (local.set $o (i32.add (local.get $o) (i32.const 16)))
        (br $js)))
      (local.set $dgi (i32.add (local.get $dgi) (local.get $g3)))
      (local.set $dgh (i32.add (local.get $dgh) (local.get $g3)))
      (local.set $g (i32.add (local.get $g) (local.get $g3)))
      (local.set $aux (i32.add (local.get $aux) (local.get $h4)))
      (local.set $hp (i32.add (local.get $hp) (local.get $h4)))
      (local.set $dh (i32.add (local.get $dh) (local.get $h4)))
      (local.set $dy (i32.add (local.get $dy) (local.get $h4)))
      (local.set $rows (i32.sub (local.get $rows) (i32.const 1)))
      (br $rs))))

  ;; LSTM, gates i, f, g, o: i, f, o = σ(·), g = tanh(·) of gi + gh;
  ;;   c' = f c + i g, h' = o tanh(c').   g keeps the gates; aux (R, H) keeps tanh(c').
  (func (export "lstm_fwd")
    (param $g i32) (param $gh i32) (param $bi i32) (param $bh i32) (param $cp i32) (param $cn i32)
    (param $hn i32) (param $aux i32) (param $rows i32) (param $h i32)
    (local $o i32) (local $h4 i32) (local $g4 i32) (local $ig v128) (local $fg v128)
    (local $gg v128) (local $og v128) (local $c v128) (local $tc v128) (local $p i32) (local $q i32)
    (local $bo i32)
    (local.set $h4 (i32.shl (local.get $h) (i32.const 2)))
    (local.set $g4 (i32.shl (local.get $h4) (i32.const 2)))
    (block $rdone (loop $rs
      (br_if $rdone (i32.eqz (local.get $rows)))
      (local.set $o (i32.const 0))
      (block $jdone (loop $js
        (br_if $jdone (i32.ge_u (local.get $o) (local.get $h4)))
        (local.set $p (i32.add (local.get $g) (local.get $o)))
        (local.set $q (i32.add (local.get $gh) (local.get $o)))
        (local.set $bo (local.get $o))
        (local.set $ig (call $sigmoid
          (f32x4.add
            (f32x4.add (v128.load (local.get $p)) (v128.load (i32.add (local.get $bi) (local.get $bo))))
            (f32x4.add (v128.load (local.get $q)) (v128.load (i32.add (local.get $bh) (local.get $bo)))))))
        (local.set $bo (i32.add (local.get $bo) (local.get $h4)))
        (local.set $fg (call $sigmoid
          (f32x4.add
            (f32x4.add (v128.load (i32.add (local.get $p) (local.get $h4)))
              (v128.load (i32.add (local.get $bi) (local.get $bo))))
            (f32x4.add (v128.load (i32.add (local.get $q) (local.get $h4)))
              (v128.load (i32.add (local.get $bh) (local.get $bo)))))))
        (local.set $bo (i32.add (local.get $bo) (local.get $h4)))
        (local.set $gg (call $tanh
          (f32x4.add
            (f32x4.add (v128.load (i32.add (local.get $p) (i32.shl (local.get $h4) (i32.const 1))))
              (v128.load (i32.add (local.get $bi) (local.get $bo))))
            (f32x4.add (v128.load (i32.add (local.get $q) (i32.shl (local.get $h4) (i32.const 1))))
              (v128.load (i32.add (local.get $bh) (local.get $bo)))))))
        (local.set $bo (i32.add (local.get $bo) (local.get $h4)))
        (local.set $og (call $sigmoid
          (f32x4.add
            (f32x4.add (v128.load (i32.add (local.get $p) (i32.mul (local.get $h4) (i32.const 3))))
              (v128.load (i32.add (local.get $bi) (local.get $bo))))
            (f32x4.add (v128.load (i32.add (local.get $q) (i32.mul (local.get $h4) (i32.const 3))))
              (v128.load (i32.add (local.get $bh) (local.get $bo)))))))
        (v128.store (local.get $p) (local.get $ig))
        (v128.store (i32.add (local.get $p) (local.get $h4)) (local.get $fg))
        (v128.store (i32.add (local.get $p) (i32.shl (local.get $h4) (i32.const 1))) (local.get $gg))
        (v128.store (i32.add (local.get $p) (i32.mul (local.get $h4) (i32.const 3))) (local.get $og))
        (local.set $c (f32x4.add
          (f32x4.mul (local.get $fg) (v128.load (i32.add (local.get $cp) (local.get $o))))
          (f32x4.mul (local.get $ig) (local.get $gg))))
        (local.set $tc (call $tanh (local.get $c)))
        (v128.store (i32.add (local.get $cn) (local.get $o)) (local.get $c))
        (v128.store (i32.add (local.get $aux) (local.get $o)) (local.get $tc))
        (v128.store (i32.add (local.get $hn) (local.get $o)) (f32x4.mul (local.get $og) (local.get $tc)))
        (local.set $o (i32.add (local.get $o) (i32.const 16)))
        (br $js)))
      (local.set $g (i32.add (local.get $g) (local.get $g4)))
      (local.set $gh (i32.add (local.get $gh) (local.get $g4)))
      (local.set $cp (i32.add (local.get $cp) (local.get $h4)))
      (local.set $cn (i32.add (local.get $cn) (local.get $h4)))
      (local.set $hn (i32.add (local.get $hn) (local.get $h4)))
      (local.set $aux (i32.add (local.get $aux) (local.get $h4)))
      (local.set $rows (i32.sub (local.get $rows) (i32.const 1)))
      (br $rs))))

  ;; LSTM backward of one step. dht = dh + dy;
  ;;   forward: h' = o tanh(c'), so do = dht tanh(c'), dc' = dc + dht o (1 - tanh²(c'))
  ;;   forward: c' = f c + i g, so di = dc' g, df = dc' c, dg = dc' i, dc = dc' f
  ;; Writes the pre-activation gradients (R, 4H) to `dg` and dc; the caller then sets
  ;; dh = dg W_hh.
  (func (export "lstm_bwd")
    (param $dg i32) (param $g i32) (param $aux i32) (param $cp i32) (param $dh i32) (param $dc i32)
    (param $dy i32) (param $rows i32) (param $h i32)
    (local $o i32) (local $h4 i32) (local $g4 i32) (local $ig v128) (local $fg v128)
    (local $gg v128) (local $og v128) (local $tc v128) (local $dht v128) (local $dct v128)
    (local $p i32) (local $q i32)
    (local.set $h4 (i32.shl (local.get $h) (i32.const 2)))
    (local.set $g4 (i32.shl (local.get $h4) (i32.const 2)))
    (block $rdone (loop $rs
      (br_if $rdone (i32.eqz (local.get $rows)))
      (local.set $o (i32.const 0))
      (block $jdone (loop $js
        (br_if $jdone (i32.ge_u (local.get $o) (local.get $h4)))
        (local.set $p (i32.add (local.get $g) (local.get $o)))
        (local.set $ig (v128.load (local.get $p)))
        (local.set $fg (v128.load (i32.add (local.get $p) (local.get $h4))))
        (local.set $gg (v128.load (i32.add (local.get $p) (i32.shl (local.get $h4) (i32.const 1)))))
        (local.set $og (v128.load (i32.add (local.get $p) (i32.mul (local.get $h4) (i32.const 3)))))
        (local.set $tc (v128.load (i32.add (local.get $aux) (local.get $o))))
        (local.set $dht (f32x4.add (v128.load (i32.add (local.get $dh) (local.get $o)))
          (v128.load (i32.add (local.get $dy) (local.get $o)))))
        (local.set $dct (f32x4.add (v128.load (i32.add (local.get $dc) (local.get $o)))
          (f32x4.mul (f32x4.mul (local.get $dht) (local.get $og))
            (f32x4.sub (v128.const f32x4 1 1 1 1) (f32x4.mul (local.get $tc) (local.get $tc))))))
        (local.set $q (i32.add (local.get $dg) (local.get $o)))
        (v128.store (local.get $q)
          (f32x4.mul (f32x4.mul (f32x4.mul (local.get $dct) (local.get $gg)) (local.get $ig))
            (f32x4.sub (v128.const f32x4 1 1 1 1) (local.get $ig))))
        (v128.store (i32.add (local.get $q) (local.get $h4))
          (f32x4.mul
            (f32x4.mul (f32x4.mul (local.get $dct) (v128.load (i32.add (local.get $cp) (local.get $o))))
              (local.get $fg))
            (f32x4.sub (v128.const f32x4 1 1 1 1) (local.get $fg))))
        (v128.store (i32.add (local.get $q) (i32.shl (local.get $h4) (i32.const 1)))
          (f32x4.mul (f32x4.mul (local.get $dct) (local.get $ig))
            (f32x4.sub (v128.const f32x4 1 1 1 1) (f32x4.mul (local.get $gg) (local.get $gg)))))
        (v128.store (i32.add (local.get $q) (i32.mul (local.get $h4) (i32.const 3)))
          (f32x4.mul (f32x4.mul (f32x4.mul (local.get $dht) (local.get $tc)) (local.get $og))
            (f32x4.sub (v128.const f32x4 1 1 1 1) (local.get $og))))
        (v128.store (i32.add (local.get $dc) (local.get $o)) (f32x4.mul (local.get $dct) (local.get $fg)))
        (local.set $o (i32.add (local.get $o) (i32.const 16)))
        (br $js)))
      (local.set $dg (i32.add (local.get $dg) (local.get $g4)))
      (local.set $g (i32.add (local.get $g) (local.get $g4)))
      (local.set $aux (i32.add (local.get $aux) (local.get $h4)))
      (local.set $cp (i32.add (local.get $cp) (local.get $h4)))
      (local.set $dh (i32.add (local.get $dh) (local.get $h4)))
      (local.set $dc (i32.add (local.get $dc) (local.get $h4)))
      (local.set $dy (i32.add (local.get $dy) (local.get $h4)))
      (local.set $rows (i32.sub (local.get $rows) (i32.const 1)))
      (br $rs))))
)
