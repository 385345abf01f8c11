//! A BIO sequence tagger for protocol entities: a first-order structured perceptron with
//! Viterbi decoding and averaged parameters (Collins, EMNLP 2002, "Discriminative training
//! methods for hidden Markov models: theory and experiments with perceptron algorithms", §2
//! and §3.4) over lexical, shape, context and previous-tag features. Each protocol line (step)
//! is one sequence.
//!
//! A tagger is a stack of such models: one over every entity type, then optional specialists
//! trained on a subset of types (the shipped tagger has one for the numeric types) whose
//! predictions replace the first model's for those types.
//!
//! Features are hashed with 64-bit FNV-1a (stable across platforms and compiler versions, so a
//! shipped model means the same thing everywhere). Decoding never emits `I-X` except after
//! `B-X`/`I-X`.

use std::collections::HashMap;
use std::io::{Read, Write};

use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;
use rand::seq::SliceRandom;
use rustc_hash::{FxBuildHasher, FxHashMap};
use serde::Serialize;

use crate::brat::{Document, Entity};
use crate::tokenize::{Token, tokenize};
use crate::{Error, Result};

/// Model format version, bumped whenever features or layout change.
const MODEL_VERSION: u32 = 4;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// Feeds `bytes` into a 64-bit FNV-1a state.
fn fnv_feed(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// 64-bit FNV-1a over a template id and its parts, each part followed by 0x1f.
fn fnv(template: u8, parts: &[&str]) -> u64 {
    parts.iter().fold(fnv_feed(FNV_OFFSET, &[template]), |h, p| {
        fnv_feed(fnv_feed(h, p.as_bytes()), &[0x1f])
    })
}

/// [`fnv`] of one part given as bytes (`fnv(t, &[s]) == fnv_bytes(t, s.as_bytes())`),
/// without building a string.
fn fnv_bytes(template: u8, bytes: &[u8]) -> u64 {
    fnv_feed(fnv_feed(fnv_feed(FNV_OFFSET, &[template]), bytes), &[0x1f])
}

/// Words longer than this (with the two boundary marks) get no trigram features.
const MAX_TRIGRAM_WORD: usize = 22;

/// Word shape with runs collapsed: `5.73` → `d.d`, `TCEP` → `X`, `Weigh` → `Xx`, `°` → `°`.
fn shape(word: &str) -> String {
    let mut out = String::new();
    for c in word.chars() {
        let s = if c.is_ascii_digit() {
            'd'
        } else if c.is_uppercase() {
            'X'
        } else if c.is_alphabetic() {
            'x'
        } else {
            c
        };
        if !out.ends_with(s) {
            out.push(s);
        }
    }
    out
}

fn suffix(word: &str, n: usize) -> String {
    let chars: Vec<char> = word.chars().collect();
    chars[chars.len().saturating_sub(n)..].iter().collect()
}

fn prefix(word: &str, n: usize) -> String {
    word.chars().take(n).collect()
}

/// Lowercase with look-alike characters folded (micro sign → Greek mu, ordinal/ring → degree).
pub(crate) fn normalize(word: &str) -> String {
    word.chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            '\u{b5}' => 'μ',
            'º' | '˚' => '°',
            _ => c,
        })
        .collect()
}

/// Tag-independent features of every token, and the hash of each token's normalized word
/// (which the previous-tag features combine with).
fn static_features(tokens: &[Token]) -> (Vec<Vec<u64>>, Vec<u64>) {
    let lower: Vec<String> = tokens.iter().map(|t| normalize(&t.text)).collect();
    let shapes: Vec<String> = tokens.iter().map(|t| shape(&t.text)).collect();
    let word = |i: isize| -> &str {
        usize::try_from(i).ok().and_then(|i| lower.get(i)).map_or("<pad>", String::as_str)
    };
    let shp = |i: isize| -> &str {
        usize::try_from(i).ok().and_then(|i| shapes.get(i)).map_or("<pad>", String::as_str)
    };
    let mut out = Vec::with_capacity(tokens.len());
    let mut line_pos = 0usize;
    for (i, tok) in tokens.iter().enumerate() {
        if i > 0 && tokens[i - 1].line != tok.line {
            line_pos = 0;
        }
        let j = isize::try_from(i).unwrap_or(isize::MAX);
        let w = word(j);
        let pos = line_pos.min(3).to_string();
        let title = if tok.line == 0 { "title" } else { "body" };
        let mut f = vec![
            fnv(0, &[]),
            fnv(1, &[w]),
            fnv(2, &[word(j - 1)]),
            fnv(3, &[word(j + 1)]),
            fnv(4, &[word(j - 2)]),
            fnv(5, &[word(j + 2)]),
            fnv(6, &[shp(j)]),
            fnv(7, &[shp(j - 1)]),
            fnv(8, &[shp(j + 1)]),
            fnv(9, &[&suffix(w, 3)]),
            fnv(10, &[&suffix(w, 2)]),
            fnv(11, &[&prefix(w, 3)]),
            fnv(12, &[word(j - 1), w]),
            fnv(13, &[w, word(j + 1)]),
            fnv(14, &[&pos]),
            fnv(15, &[title]),
            fnv(16, &[&pos, w]),
            fnv(17, &[word(j + 1), word(j + 2)]),
            fnv(18, &[shp(j), word(j + 1)]),
            fnv(19, &[word(j - 1), shp(j)]),
            fnv(20, &[&suffix(word(j + 1), 3)]),
            fnv(21, &[shp(j - 1), shp(j), shp(j + 1)]),
            fnv(22, &[word(j - 2), word(j - 1)]),
            fnv(23, &[&suffix(w, 4)]),
            fnv(26, &[shp(j + 2)]),
            fnv(27, &[shp(j - 2)]),
            fnv(28, &[shp(j + 1), shp(j + 2)]),
            fnv(29, &[shp(j - 2), shp(j - 1)]),
        ];
        // Unit kinds generalize over spellings seen rarely or never in training ("litre", "gm").
        let unit = |i: isize| {
            usize::try_from(i)
                .ok()
                .and_then(|i| lower.get(i))
                .and_then(|w| crate::units::unit_class(w))
                .unwrap_or("-")
        };
        f.push(fnv(34, &[unit(j)]));
        f.push(fnv(35, &[unit(j + 1)]));
        f.push(fnv(36, &[unit(j - 1)]));
        f.push(fnv(37, &[shp(j), unit(j + 1), unit(j + 2)]));
        // Character trigrams of the word between boundary marks: another way to generalize
        // over rare spellings (5-fold CV on train+dev: all-type micro F1 +0.003).
        let marked: Vec<char> = std::iter::once('<').chain(w.chars()).chain(['>']).collect();
        if marked.len() <= MAX_TRIGRAM_WORD {
            let mut buf = [0u8; 12];
            for g in marked.windows(3) {
                let mut len = 0;
                for c in g {
                    len += c.encode_utf8(&mut buf[len..]).len();
                }
                f.push(fnv_bytes(38, &buf[..len]));
            }
        }
        if tok.text.chars().any(|c| c.is_ascii_digit()) {
            // Numbers: what surrounds them decides Amount vs Concentration vs Time …
            f.push(fnv(24, &[word(j + 1), word(j + 2), word(j + 3)]));
            f.push(fnv(25, &[word(j - 1), word(j + 1)]));
        }
        out.push(f);
        line_pos += 1;
    }
    let words = lower.iter().map(|w| fnv(1, &[w])).collect();
    (out, words)
}

/// The hashes of the previous-tag templates: the transition (previous tag alone) and the
/// previous tag combined with the word. Viterbi needs them for every (token, previous tag)
/// pair it visits: computed once (tags are fewer than 256).
fn previous_tag_hashes(prev: usize) -> [u64; 2] {
    static TAGS: std::sync::OnceLock<Vec<[u64; 2]>> = std::sync::OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        (0..256usize)
            .map(|p| {
                let p = p.to_string();
                [fnv(30, &[&p]), fnv(32, &[&p])]
            })
            .collect()
    });
    tags[prev]
}

/// Features that depend on the previous tag (first order, so Viterbi is exact): the
/// transition, and the previous tag × the word.
fn tag_features(prev: usize, word_hash: u64) -> [u64; 2] {
    let [transition, with_word] = previous_tag_hashes(prev);
    [transition, with_word ^ word_hash.rotate_left(17)]
}

/// Read access to weights, dense while training and sparse once trained.
trait Weights {
    /// Adds feature `f`'s weight vector to `out`.
    fn add_to(&self, f: u64, out: &mut [f32]);
}

/// The highest-scoring allowed tag sequence of one segment (a line), starting after `O`.
fn viterbi(stat: &[Vec<u64>], words: &[u64], n: usize, w: &impl Weights) -> Vec<usize> {
    let len = stat.len();
    if len == 0 {
        return Vec::new();
    }
    let mut back = vec![0usize; len * n];
    let mut prev_score = vec![f32::NEG_INFINITY; n];
    let mut cur = vec![f32::NEG_INFINITY; n];
    let mut base = vec![0.0f32; n];
    let mut dynamic = vec![0.0f32; n];
    let (first, all) = ([0usize], (0..n).collect::<Vec<usize>>());
    // The transition weights do not depend on the word: looked up once per line instead of
    // once per token and previous tag.
    let mut transitions = vec![0.0f32; n * n];
    for (p, row) in transitions.chunks_exact_mut(n).enumerate() {
        w.add_to(previous_tag_hashes(p)[0], row);
    }
    for i in 0..len {
        base.fill(0.0);
        for &f in &stat[i] {
            w.add_to(f, &mut base);
        }
        cur.fill(f32::NEG_INFINITY);
        let prevs: &[usize] = if i == 0 { &first } else { &all };
        for &p in prevs {
            let ps = if i == 0 { 0.0 } else { prev_score[p] };
            if ps == f32::NEG_INFINITY {
                continue;
            }
            for ((d, b), t) in dynamic.iter_mut().zip(&base).zip(&transitions[p * n..(p + 1) * n]) {
                *d = b + t;
            }
            w.add_to(tag_features(p, words[i])[1], &mut dynamic);
            for t in 0..n {
                if allowed(t, p) {
                    let s = ps + dynamic[t];
                    if s > cur[t] {
                        cur[t] = s;
                        back[i * n + t] = p;
                    }
                }
            }
        }
        std::mem::swap(&mut prev_score, &mut cur);
    }
    let mut t = (0..n).fold(0, |b, t| if prev_score[t] > prev_score[b] { t } else { b });
    let mut out = vec![0; len];
    for i in (0..len).rev() {
        out[i] = t;
        t = back[i * n + t];
    }
    out
}

/// `[start, end)` token ranges of each line.
fn segments(tokens: &[Token]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=tokens.len() {
        if i == tokens.len() || tokens[i].line != tokens[i - 1].line {
            out.push((start, i));
            start = i;
        }
    }
    out
}

/// BIO tag set over entity types: 0 = O, 2k+1 = B-kind k, 2k+2 = I-kind k.
fn n_tags(kinds: usize) -> usize {
    2 * kinds + 1
}

fn allowed(tag: usize, prev: usize) -> bool {
    // I-k (even, ≥ 2) only after B-k (tag − 1) or I-k (tag).
    tag == 0 || tag % 2 == 1 || prev == tag || prev + 1 == tag
}

/// Gold BIO tags of `tokens` from `entities` (tokens inside a span; the first is B).
fn gold_tags(tokens: &[Token], entities: &[Entity], kinds: &[String]) -> Vec<usize> {
    let mut tags = vec![0; tokens.len()];
    for e in entities {
        let Some(k) = kinds.iter().position(|x| *x == e.kind) else { continue };
        let mut first = true;
        for (t, tok) in tags.iter_mut().zip(tokens) {
            if tok.start >= e.start && tok.end <= e.end {
                *t = if first { 2 * k + 1 } else { 2 * k + 2 };
                first = false;
            }
        }
    }
    tags
}

/// Turns BIO tags back into character spans.
fn spans(tokens: &[Token], tags: &[usize], kinds: &[String]) -> Vec<Entity> {
    let mut out = Vec::new();
    let mut open: Option<(usize, usize, usize)> = None; // (kind, start, end)
    for (tok, &tag) in tokens.iter().zip(tags) {
        let continues = tag != 0 && tag % 2 == 0 && open.is_some_and(|(k, _, _)| 2 * k + 2 == tag);
        if continues {
            if let Some(o) = open.as_mut() {
                o.2 = tok.end;
            }
            continue;
        }
        if let Some((k, s, e)) = open.take() {
            out.push(Entity { start: s, end: e, kind: kinds[k].clone() });
        }
        if tag != 0 {
            open = Some(((tag - 1) / 2, tok.start, tok.end));
        }
    }
    if let Some((k, s, e)) = open {
        out.push(Entity { start: s, end: e, kind: kinds[k].clone() });
    }
    out
}

/// Training options.
#[derive(Clone, Copy, Debug)]
pub struct TrainOptions {
    /// Passes over the training documents.
    pub epochs: usize,
    /// Seed of the document shuffle (training is deterministic given the seed).
    pub seed: u64,
    /// Averaged weights with magnitude below this are dropped from the model.
    pub prune_below: f32,
    /// Taggers trained on differently shuffled passes whose weights are averaged.
    pub bags: usize,
    /// Entity types that get a specialist model of their own (trained with every other type
    /// unannotated), whose predictions replace the all-types model's for these types. Empty:
    /// no specialist.
    pub specialist: &'static [&'static str],
}

impl TrainOptions {
    /// The recipe of the shipped model: ten epochs, five bags, a specialist for
    /// [`NUMERIC_KINDS`].
    #[must_use]
    pub fn shipped() -> Self {
        Self { bags: 5, specialist: &NUMERIC_KINDS, ..Self::default() }
    }
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self { epochs: 10, seed: 7, prune_below: 1e-3, bags: 1, specialist: &[] }
    }
}

/// Feature hash → sparse (tag, weight) pairs, while bags are merged.
type SparseWeights = FxHashMap<u64, Vec<(u8, f32)>>;

/// Trained weights: feature hash → a run of (tag, weight) pairs in one shared arena, so a
/// lookup touches the index and then one contiguous run instead of a separate allocation per
/// feature.
#[derive(Clone, Debug, Default)]
struct PackedWeights {
    index: FxHashMap<u64, (u32, u32)>,
    pairs: Vec<(u8, f32)>,
}

impl PackedWeights {
    /// Packs `(feature, pairs)` entries; `None` when a feature repeats or the arena would
    /// outgrow 32-bit offsets.
    fn pack(entries: impl IntoIterator<Item = (u64, Vec<(u8, f32)>)>) -> Option<Self> {
        let mut out = Self::default();
        for (f, ws) in entries {
            let start = u32::try_from(out.pairs.len()).ok()?;
            let len = u32::try_from(ws.len()).ok()?;
            if out.index.insert(f, (start, len)).is_some() {
                return None;
            }
            out.pairs.extend(ws);
        }
        u32::try_from(out.pairs.len()).ok()?;
        Some(out)
    }

    fn get(&self, f: u64) -> Option<&[(u8, f32)]> {
        let &(start, len) = self.index.get(&f)?;
        let start = usize::try_from(start).ok()?;
        self.pairs.get(start..start + usize::try_from(len).ok()?)
    }

    fn len(&self) -> usize {
        self.index.len()
    }

    /// Every feature with its pairs, sorted by feature hash (the file order).
    fn sorted(&self) -> Vec<(u64, &[(u8, f32)])> {
        let mut out: Vec<(u64, &[(u8, f32)])> =
            self.index.keys().filter_map(|&f| Some((f, self.get(f)?))).collect();
        out.sort_unstable_by_key(|(f, _)| *f);
        out
    }
}

/// The model file's layout (before gzip): version, then per model its entity types and its
/// weights sorted by feature hash.
type StoredTagger = (u32, Vec<(Vec<String>, Vec<(u64, Vec<(u8, f32)>)>)>);

/// One perceptron: the entity types it tags and its averaged weights.
#[derive(Clone, Debug)]
struct Model {
    kinds: Vec<String>,
    weights: PackedWeights,
}

/// A trained tagger: the all-types model, then specialists that override it for their types.
#[derive(Clone, Debug)]
pub struct Tagger {
    version: u32,
    models: Vec<Model>,
}

struct Trainer {
    n: usize,
    weights: FxHashMap<u64, Vec<f32>>,
    totals: FxHashMap<u64, Vec<f32>>,
    stamps: FxHashMap<u64, Vec<u32>>,
    step: u32,
}

impl Weights for FxHashMap<u64, Vec<f32>> {
    fn add_to(&self, f: u64, out: &mut [f32]) {
        if let Some(w) = self.get(&f) {
            for (o, x) in out.iter_mut().zip(w) {
                *o += x;
            }
        }
    }
}

impl Weights for PackedWeights {
    fn add_to(&self, f: u64, out: &mut [f32]) {
        if let Some(w) = self.get(f) {
            for &(t, x) in w {
                if let Some(o) = out.get_mut(usize::from(t)) {
                    *o += x;
                }
            }
        }
    }
}

impl Trainer {
    fn update(&mut self, feats: &[u64], tag: usize, delta: f32) {
        let n = self.n;
        for &f in feats {
            let w = self.weights.entry(f).or_insert_with(|| vec![0.0; n]);
            let t = self.totals.entry(f).or_insert_with(|| vec![0.0; n]);
            let s = self.stamps.entry(f).or_insert_with(|| vec![0; n]);
            #[allow(clippy::cast_precision_loss, reason = "step counts below 2^24")]
            let elapsed = (self.step - s[tag]) as f32;
            t[tag] += elapsed * w[tag];
            s[tag] = self.step;
            w[tag] += delta;
        }
    }

    fn finish(mut self, prune_below: f32) -> SparseWeights {
        let mut weights = FxHashMap::with_capacity_and_hasher(self.weights.len(), FxBuildHasher);
        #[allow(clippy::cast_precision_loss, reason = "step counts below 2^24")]
        let steps = self.step.max(1) as f32;
        for (f, w) in self.weights.drain() {
            let t = &self.totals[&f];
            let s = &self.stamps[&f];
            let mut sparse = Vec::new();
            for tag in 0..self.n {
                #[allow(clippy::cast_precision_loss, reason = "step counts below 2^24")]
                let total = t[tag] + (self.step - s[tag]) as f32 * w[tag];
                let avg = total / steps;
                if avg.abs() >= prune_below {
                    #[allow(clippy::cast_possible_truncation, reason = "at most 255 tags")]
                    sparse.push((tag as u8, avg));
                }
            }
            if !sparse.is_empty() {
                weights.insert(f, sparse);
            }
        }
        weights
    }
}

impl Model {
    /// Trains on the entities of `docs` whose type is in `kinds` (sorted, non-empty).
    /// `pass` is called after every pass over the documents.
    fn train(
        docs: &[Document],
        kinds: Vec<String>,
        options: TrainOptions,
        pass: &mut dyn FnMut(),
    ) -> Result<Self> {
        let n = n_tags(kinds.len());
        type Prepared = (Vec<Vec<u64>>, Vec<u64>, Vec<usize>, Vec<(usize, usize)>);
        let prepared: Vec<Prepared> = docs
            .iter()
            .map(|d| {
                let tokens = tokenize(&d.text);
                let gold = gold_tags(&tokens, &d.entities, &kinds);
                let (stat, words) = static_features(&tokens);
                (stat, words, gold, segments(&tokens))
            })
            .collect();
        let bags = options.bags.max(1);
        let mut merged = SparseWeights::default();
        for bag in 0..bags {
            let mut trainer = Trainer {
                n,
                weights: FxHashMap::default(),
                totals: FxHashMap::default(),
                stamps: FxHashMap::default(),
                step: 0,
            };
            let mut order: Vec<usize> = (0..prepared.len()).collect();
            let mut rng = ChaCha20Rng::seed_from_u64(options.seed.wrapping_add(bag as u64));
            for _ in 0..options.epochs {
                pass();
                order.shuffle(&mut rng);
                for &d in &order {
                    let (stat, words, gold, segs) = &prepared[d];
                    for &(a, b) in segs {
                        trainer.step += 1;
                        let guess = viterbi(&stat[a..b], &words[a..b], n, &trainer.weights);
                        for i in a..b {
                            let (g, p) = (gold[i], guess[i - a]);
                            let (gp, pp) =
                                if i == a { (0, 0) } else { (gold[i - 1], guess[i - a - 1]) };
                            if (g, gp) == (p, pp) {
                                continue;
                            }
                            let gf = tag_features(gp, words[i]);
                            let pf = tag_features(pp, words[i]);
                            if g != p {
                                trainer.update(&stat[i], g, 1.0);
                                trainer.update(&stat[i], p, -1.0);
                            }
                            trainer.update(&gf, g, 1.0);
                            trainer.update(&pf, p, -1.0);
                        }
                    }
                }
            }
            let one = trainer.finish(0.0);
            #[allow(clippy::cast_precision_loss, reason = "few bags")]
            let scale = 1.0 / bags as f32;
            for (f, ws) in one {
                let e = merged.entry(f).or_default();
                for (t, w) in ws {
                    match e.iter_mut().find(|(u, _)| *u == t) {
                        Some((_, x)) => *x += w * scale,
                        None => e.push((t, w * scale)),
                    }
                }
            }
        }
        merged.retain(|_, ws| {
            ws.retain(|(_, w)| w.abs() >= options.prune_below);
            !ws.is_empty()
        });
        let weights = PackedWeights::pack(merged)
            .ok_or_else(|| Error::param("training set", "more weights than 32-bit offsets"))?;
        Ok(Self { kinds, weights })
    }

    /// BIO tags of `tokens`, decoded line by line.
    fn tag(&self, tokens: &[Token], stat: &[Vec<u64>], words: &[u64]) -> Vec<Entity> {
        let n = n_tags(self.kinds.len());
        let mut tags = Vec::with_capacity(tokens.len());
        for (a, b) in segments(tokens) {
            tags.extend(viterbi(&stat[a..b], &words[a..b], n, &self.weights));
        }
        spans(tokens, &tags, &self.kinds)
    }
}

impl Tagger {
    /// Trains on gold-annotated documents. Entity types are those seen in `docs`, sorted; a
    /// specialist is trained when `options.specialist` names types seen in `docs`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] for no documents, no entities, zero epochs or more than 127
    /// entity types.
    pub fn train(docs: &[Document], options: TrainOptions) -> Result<Self> {
        Self::train_with_progress(docs, options, &mut |_, _| {})
    }

    /// [`Tagger::train`], calling `progress(done, total)` as passes over the documents start
    /// (`total` = models × bags × epochs), e.g. to drive a progress bar.
    ///
    /// # Errors
    ///
    /// As [`Tagger::train`].
    pub fn train_with_progress(
        docs: &[Document],
        options: TrainOptions,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Self> {
        let mut kinds: Vec<String> =
            docs.iter().flat_map(|d| &d.entities).map(|e| e.kind.clone()).collect();
        kinds.sort();
        kinds.dedup();
        if kinds.is_empty() || options.epochs == 0 {
            return Err(Error::param("training set", "needs annotated documents and ≥ 1 epoch"));
        }
        if n_tags(kinds.len()) > 255 {
            return Err(Error::param("training set", "more than 127 entity types"));
        }
        let special: Vec<String> =
            kinds.iter().filter(|k| options.specialist.contains(&k.as_str())).cloned().collect();
        let total = (1 + usize::from(!special.is_empty())) * options.bags.max(1) * options.epochs;
        let mut done = 0;
        let mut pass = || {
            progress(done, total);
            done += 1;
        };
        let mut models = vec![Model::train(docs, kinds, options, &mut pass)?];
        if !special.is_empty() {
            models.push(Model::train(docs, special, options, &mut pass)?);
        }
        progress(total, total);
        Ok(Self { version: MODEL_VERSION, models })
    }

    /// The entity types this tagger predicts.
    #[must_use]
    pub fn kinds(&self) -> &[String] {
        self.models.first().map_or(&[], |m| m.kinds.as_slice())
    }

    /// Number of features with non-zero weights, over all models.
    #[must_use]
    pub fn num_features(&self) -> usize {
        self.models.iter().map(|m| m.weights.len()).sum()
    }

    /// Predicted entities of `text`, sorted by position, with character offsets.
    #[must_use]
    pub fn tag(&self, text: &str) -> Vec<Entity> {
        let tokens = tokenize(text);
        let (stat, words) = static_features(&tokens);
        let mut out: Vec<Entity> = Vec::new();
        for model in &self.models {
            let found = model.tag(&tokens, &stat, &words);
            // A later model owns its types and wins where spans overlap (chosen on dev: micro
            // F1 0.7668 keeping overlaps, 0.7671 dropping them).
            out.retain(|e| {
                !model.kinds.contains(&e.kind)
                    && !found.iter().any(|f| f.start < e.end && e.start < f.end)
            });
            out.extend(found);
        }
        out.sort_by_key(|e| (e.start, e.end));
        out
    }

    /// Writes the tagger: gzip-compressed postcard.
    ///
    /// # Errors
    ///
    /// [`Error::Model`] when encoding or writing fails.
    pub fn write(&self, out: impl Write) -> Result<()> {
        let models: Vec<_> = self.models.iter().map(|m| (&m.kinds, m.weights.sorted())).collect();
        let bytes = postcard::to_stdvec(&(self.version, models))
            .map_err(|e| Error::Model(e.to_string()))?;
        let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::best());
        gz.write_all(&bytes).map_err(|e| Error::Model(e.to_string()))?;
        gz.finish().map_err(|e| Error::Model(e.to_string()))?;
        Ok(())
    }

    /// Reads a tagger written by [`Tagger::write`], refusing other versions, more than
    /// `64 MiB` decompressed, no or more than 8 models, and non-finite weights.
    ///
    /// # Errors
    ///
    /// [`Error::Model`].
    pub fn read(input: impl Read) -> Result<Self> {
        const LIMIT: u64 = 64 << 20;
        let mut bytes = Vec::new();
        flate2::read::GzDecoder::new(input)
            .take(LIMIT + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::Model(format!("not a gzip stream: {e}")))?;
        if bytes.len() as u64 > LIMIT {
            return Err(Error::Model("larger than 64 MiB decompressed".into()));
        }
        let (version, stored): StoredTagger =
            postcard::from_bytes(&bytes).map_err(|e| Error::Model(e.to_string()))?;
        if version != MODEL_VERSION {
            return Err(Error::Model(format!(
                "version {version}, this build reads {MODEL_VERSION}"
            )));
        }
        if stored.is_empty() || stored.len() > 8 {
            return Err(Error::Model(format!("{} models", stored.len())));
        }
        let mut models = Vec::with_capacity(stored.len());
        for (kinds, entries) in stored {
            let n = n_tags(kinds.len());
            if kinds.is_empty() || n > 255 {
                return Err(Error::Model(format!("{} entity types", kinds.len())));
            }
            for (_, w) in &entries {
                if w.iter().any(|&(t, x)| usize::from(t) >= n || !x.is_finite()) {
                    return Err(Error::Model("weight for an unknown tag or not finite".into()));
                }
            }
            let weights = PackedWeights::pack(entries)
                .ok_or_else(|| Error::Model("a feature repeats or too many weights".into()))?;
            models.push(Model { kinds, weights });
        }
        Ok(Self { version, models })
    }
}

/// Exact-match counts for one entity type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Gold entities.
    pub gold: usize,
    /// Predicted entities.
    pub predicted: usize,
    /// Predicted entities with exactly the gold span and type.
    pub correct: usize,
}

impl Counts {
    /// Precision (1 when nothing was predicted).
    #[must_use]
    #[allow(clippy::cast_precision_loss, reason = "entity counts far below 2^53")]
    pub fn precision(&self) -> f64 {
        if self.predicted == 0 { 1.0 } else { self.correct as f64 / self.predicted as f64 }
    }

    /// Recall (1 when there is no gold entity).
    #[must_use]
    #[allow(clippy::cast_precision_loss, reason = "entity counts far below 2^53")]
    pub fn recall(&self) -> f64 {
        if self.gold == 0 { 1.0 } else { self.correct as f64 / self.gold as f64 }
    }

    /// Harmonic mean of precision and recall (0 when both are 0).
    #[must_use]
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 { 0.0 } else { 2.0 * p * r / (p + r) }
    }

    /// Adds another count.
    pub fn add(&mut self, other: Self) {
        self.gold += other.gold;
        self.predicted += other.predicted;
        self.correct += other.correct;
    }
}

/// SHA-256 (hex) over everything the tagger reads from `docs`' text: each token's span and
/// line, its static feature hashes and its word hash, in order. [`Tagger::train`] learns
/// weights for exactly these hashes, so a change to the tokenizer, the feature templates or the
/// unit tables they consult changes the fingerprint; `wlp_train` records it beside the model
/// it writes, and a test recomputes it on `train` for the shipped model, so such a change
/// fails the tests until the model is retrained instead of silently skewing extraction.
#[must_use]
pub fn feature_fingerprint(docs: &[Document]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for doc in docs {
        let tokens = tokenize(&doc.text);
        let (stat, words) = static_features(&tokens);
        h.update((tokens.len() as u64).to_le_bytes());
        for ((tok, feats), word) in tokens.iter().zip(&stat).zip(&words) {
            for n in [tok.start, tok.end, tok.line, feats.len()] {
                h.update((n as u64).to_le_bytes());
            }
            for f in feats.iter().chain([word]) {
                h.update(f.to_le_bytes());
            }
        }
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Per-type exact span-and-type match counts of `predicted` against `gold`.
#[must_use]
pub fn score(gold: &[Entity], predicted: &[Entity]) -> HashMap<String, Counts> {
    let mut out: HashMap<String, Counts> = HashMap::new();
    let gold_set: std::collections::HashSet<&Entity> = gold.iter().collect();
    for g in gold {
        out.entry(g.kind.clone()).or_default().gold += 1;
    }
    for p in predicted {
        let c = out.entry(p.kind.clone()).or_default();
        c.predicted += 1;
        if gold_set.contains(p) {
            c.correct += 1;
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;

    fn doc(text: &str, ents: &[(usize, usize, &str)]) -> Document {
        Document {
            path: "x.txt".into(),
            text: text.into(),
            entities: ents
                .iter()
                .map(|&(start, end, k)| Entity { start, end, kind: k.into() })
                .collect(),
        }
    }

    #[test]
    fn byte_hash_matches_the_string_hash_and_trigrams_cover_the_word() {
        for s in ["", "<ml", "μl>", "°c", "abc"] {
            assert_eq!(fnv_bytes(38, s.as_bytes()), fnv(38, &[s]));
        }
        let tokens = tokenize("T\nAdd 5 ml");
        let (stat, _) = static_features(&tokens);
        // "ml" between marks: "<ml" and "ml>".
        assert!(stat[3].contains(&fnv(38, &["<ml"])) && stat[3].contains(&fnv(38, &["ml>"])));
        // The number sees the unit kind of the next token.
        assert!(stat[2].contains(&fnv(35, &["volume"])));
    }

    #[test]
    fn bio_round_trip_and_constraint() {
        let kinds = vec!["Action".to_owned(), "Amount".to_owned()];
        let d = doc("Title\nAdd 35 ml water", &[(6, 9, "Action"), (10, 15, "Amount")]);
        let tokens = tokenize(&d.text);
        let tags = gold_tags(&tokens, &d.entities, &kinds);
        assert_eq!(spans(&tokens, &tags, &kinds), d.entities);
        assert!(!allowed(4, 0) && allowed(4, 3) && allowed(4, 4) && !allowed(4, 2));
    }

    #[test]
    fn learns_a_tiny_corpus_and_round_trips_through_bytes() {
        let mut docs = Vec::new();
        for (verb, n) in [("Add", "35"), ("Add", "10"), ("Pour", "5"), ("Add", "2")] {
            let text = format!("T\n{verb} {n} ml water");
            let a = 2 + verb.len();
            docs.push(doc(&text, &[(2, a, "Action"), (a + 1, a + 1 + n.len() + 3, "Amount")]));
        }
        let mut calls = Vec::new();
        let options = TrainOptions { bags: 2, specialist: &["Amount"], ..TrainOptions::default() };
        let t =
            Tagger::train_with_progress(&docs, options, &mut |d, n| calls.push((d, n))).unwrap();
        // Two models × two bags × ten epochs, then done.
        assert_eq!(calls, (0..=40).map(|d| (d, 40)).collect::<Vec<_>>());
        let got = t.tag("T\nAdd 70 ml water");
        let want = vec![
            Entity { start: 2, end: 5, kind: "Action".into() },
            Entity { start: 6, end: 11, kind: "Amount".into() },
        ];
        assert_eq!(got, want);
        let mut bytes = Vec::new();
        t.write(&mut bytes).unwrap();
        let back = Tagger::read(bytes.as_slice()).unwrap();
        assert_eq!(back.tag("T\nAdd 70 ml water"), got);
        assert!(Tagger::read(&b"not gzip"[..]).is_err());
        assert!(Tagger::read(&bytes[..bytes.len() / 2]).is_err());
    }

    #[test]
    fn a_specialist_owns_its_types_and_wins_overlaps() {
        let texts = ["Add", "Pour", "Mix"].map(|v| format!("T\n{v} 35 ml water"));
        let annotate = |kind: &str, len: usize| -> Vec<Document> {
            texts.iter().map(|t| doc(t, &[(t.len() - 11, t.len() - 11 + len, kind)])).collect()
        };
        // The all-types model sees "35 ml water" as one Reagent and never an Amount; the
        // specialist sees "35 ml" as an Amount.
        let options = TrainOptions::default();
        let main =
            Model::train(&annotate("Reagent", 11), vec!["Reagent".into()], options, &mut || {})
                .unwrap();
        let special =
            Model::train(&annotate("Amount", 5), vec!["Amount".into()], options, &mut || {})
                .unwrap();
        let alone = Tagger { version: MODEL_VERSION, models: vec![main.clone()] };
        let text = "T\nStir 70 ml water";
        assert_eq!(alone.tag(text), vec![Entity { start: 7, end: 18, kind: "Reagent".into() }]);
        let both = Tagger { version: MODEL_VERSION, models: vec![main, special] };
        assert_eq!(both.tag(text), vec![Entity { start: 7, end: 12, kind: "Amount".into() }]);
        assert_eq!(both.kinds(), ["Reagent"]);

        // Trained through the options: two models, both survive a round trip.
        let mut docs = annotate("Amount", 5);
        docs.extend(texts.iter().map(|t| doc(t, &[(2, t.len() - 12, "Action")])));
        let t = Tagger::train(
            &docs,
            TrainOptions { specialist: &["Amount", "Temperature"], ..options },
        )
        .unwrap();
        assert_eq!(t.models.len(), 2);
        assert_eq!(t.models[1].kinds, ["Amount"]);
        let mut bytes = Vec::new();
        t.write(&mut bytes).unwrap();
        let back = Tagger::read(bytes.as_slice()).unwrap();
        assert_eq!(back.tag(text), t.tag(text));
    }

    #[test]
    fn model_files_without_models_or_of_other_versions_are_refused() {
        let gz = |value: &StoredTagger| {
            let mut out = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            out.write_all(&postcard::to_stdvec(value).unwrap()).unwrap();
            out.finish().unwrap()
        };
        let empty = gz(&(MODEL_VERSION, Vec::new()));
        assert!(
            matches!(Tagger::read(empty.as_slice()), Err(Error::Model(m)) if m.contains("0 models"))
        );
        let one = (vec!["Amount".to_owned()], vec![(1u64, vec![(0u8, 1.0f32)])]);
        assert!(Tagger::read(gz(&(MODEL_VERSION, vec![one.clone()])).as_slice()).is_ok());
        assert!(Tagger::read(gz(&(2, vec![one.clone()])).as_slice()).is_err());
        let repeated = (vec!["Amount".to_owned()], vec![(1u64, vec![(0u8, 1.0f32)]); 2]);
        assert!(Tagger::read(gz(&(MODEL_VERSION, vec![repeated])).as_slice()).is_err());
        let bad_tag = (vec!["Amount".to_owned()], vec![(1u64, vec![(3u8, 1.0f32)])]);
        assert!(Tagger::read(gz(&(MODEL_VERSION, vec![one, bad_tag])).as_slice()).is_err());
    }
}

/// Entity types pooled into [`Evaluation::numeric_micro`].
pub const NUMERIC_KINDS: [&str; 6] =
    ["Amount", "Concentration", "Temperature", "Time", "Speed", "pH"];

/// Per-type and pooled scores of a tagger on gold documents.
#[derive(Clone, Debug, Default)]
pub struct Evaluation {
    /// Counts per entity type.
    pub per_type: std::collections::BTreeMap<String, Counts>,
    /// All types pooled.
    pub micro: Counts,
    /// [`NUMERIC_KINDS`] pooled.
    pub numeric_micro: Counts,
    /// Documents evaluated.
    pub protocols: usize,
}

impl Evaluation {
    /// Tags every document (in parallel) and scores exact span-and-type matches.
    #[must_use]
    pub fn run(tagger: &Tagger, docs: &[Document]) -> Self {
        use rayon::prelude::*;
        let predicted: Vec<Vec<Entity>> = docs.par_iter().map(|d| tagger.tag(&d.text)).collect();
        Self::of_predictions(docs, &predicted)
    }

    /// Scores `predicted[i]` against `docs[i]`'s gold entities (exact span-and-type matches),
    /// for callers that keep the predictions.
    #[must_use]
    pub fn of_predictions(docs: &[Document], predicted: &[Vec<Entity>]) -> Self {
        let mut out = Self { protocols: docs.len(), ..Self::default() };
        for (doc, found) in docs.iter().zip(predicted) {
            for (k, c) in score(&doc.entities, found) {
                out.micro.add(c);
                if NUMERIC_KINDS.contains(&k.as_str()) {
                    out.numeric_micro.add(c);
                }
                out.per_type.entry(k).or_default().add(c);
            }
        }
        out
    }

    /// The JSON object `wlp_eval` prints: `{"per_type": {...}, "micro": {...},
    /// "numeric_micro": {...}, "protocols": N}`, each score with precision, recall, f1, gold
    /// and predicted.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        let one = |c: &Counts| {
            serde_json::json!({
                "precision": c.precision(), "recall": c.recall(), "f1": c.f1(),
                "gold": c.gold, "predicted": c.predicted,
            })
        };
        let per_type: serde_json::Map<String, serde_json::Value> =
            self.per_type.iter().map(|(k, c)| (k.clone(), one(c))).collect();
        serde_json::json!({
            "per_type": per_type,
            "micro": one(&self.micro),
            "numeric_micro": one(&self.numeric_micro),
            "protocols": self.protocols,
        })
    }
}
