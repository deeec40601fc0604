//! A word tokenizer: lower-case words, a vocabulary of the most frequent training words,
//! out-of-vocabulary and padding ids, a length cap.

use std::collections::HashMap;

/// Id of padding.
pub const PAD: u32 = 0;
/// Id of a word outside the vocabulary.
pub const OOV: u32 = 1;

/// Lower-case words of `text`: runs of letters, digits and apostrophes.
///
/// ```
/// assert_eq!(labelsmooth_data::text::words("It's GREAT -- 10/10!"), vec!["it's", "great", "10", "10"]);
/// ```
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .map(|w| w.trim_matches('\''))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// A vocabulary fitted on training texts. It serializes as its vocabulary and `max_len` (the
/// word index is rebuilt on reading).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "TokenizerParts", into = "TokenizerParts")]
pub struct Tokenizer {
    /// Words by id: index 0 is padding, 1 out-of-vocabulary, then the words by falling count
    /// (ties alphabetical).
    pub vocabulary: Vec<String>,
    index: HashMap<String, u32>,
    /// Tokens per sequence: longer texts are cut, shorter ones padded in front.
    pub max_len: usize,
}

impl Tokenizer {
    /// Fits a vocabulary of at most `vocab_size` ids (padding and out-of-vocabulary included)
    /// on `texts`; sequences hold `max_len` tokens.
    ///
    /// ```
    /// use labelsmooth_data::text::{Tokenizer, OOV, PAD};
    /// let t = Tokenizer::fit(&["a b b", "b c"], 4, 3);
    /// assert_eq!(t.vocabulary, vec!["<pad>", "<oov>", "b", "a"]);
    /// assert_eq!(t.encode("b zzz"), vec![PAD, 2, OOV]);
    /// ```
    pub fn fit<S: AsRef<str>>(texts: &[S], vocab_size: usize, max_len: usize) -> Tokenizer {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for t in texts {
            for w in words(t.as_ref()) {
                *counts.entry(w).or_default() += 1;
            }
        }
        let mut by_count: Vec<(String, usize)> = counts.into_iter().collect();
        by_count.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut vocabulary = vec!["<pad>".to_string(), "<oov>".to_string()];
        vocabulary.extend(
            by_count
                .into_iter()
                .take(vocab_size.saturating_sub(2))
                .map(|(w, _)| w),
        );
        Tokenizer::from_vocabulary(vocabulary, max_len)
    }

    fn from_vocabulary(vocabulary: Vec<String>, max_len: usize) -> Tokenizer {
        let index = vocabulary
            .iter()
            .enumerate()
            .skip(2)
            .map(|(i, w)| (w.clone(), i as u32))
            .collect();
        Tokenizer {
            vocabulary,
            index,
            max_len,
        }
    }

    /// Number of ids.
    pub fn vocab_size(&self) -> usize {
        self.vocabulary.len()
    }

    /// Token ids of one text: its first `max_len` words, padded in front to `max_len`.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let ids: Vec<u32> = words(text)
            .into_iter()
            .take(self.max_len)
            .map(|w| self.index.get(&w).copied().unwrap_or(OOV))
            .collect();
        let mut out = vec![PAD; self.max_len - ids.len()];
        out.extend(ids);
        out
    }

    /// Token ids of many texts, `[n, max_len]` row-major.
    pub fn encode_all<S: AsRef<str>>(&self, texts: &[S]) -> Vec<u32> {
        texts.iter().flat_map(|t| self.encode(t.as_ref())).collect()
    }
}

/// What a [`Tokenizer`] is saved as.
#[derive(serde::Serialize, serde::Deserialize)]
struct TokenizerParts {
    /// How texts are cut into words.
    words: String,
    max_len: usize,
    vocabulary: Vec<String>,
}

/// The only word rule there is: lower-case runs of letters, digits and apostrophes.
const WORDS: &str = "lowercase-alphanumeric-apostrophe";

impl From<Tokenizer> for TokenizerParts {
    fn from(t: Tokenizer) -> Self {
        TokenizerParts {
            words: WORDS.into(),
            max_len: t.max_len,
            vocabulary: t.vocabulary,
        }
    }
}

impl TryFrom<TokenizerParts> for Tokenizer {
    type Error = String;
    fn try_from(p: TokenizerParts) -> Result<Self, String> {
        if p.words != WORDS {
            return Err(format!("unknown word rule `{}`", p.words));
        }
        if p.vocabulary.len() < 2 || p.max_len == 0 {
            return Err(
                "a vocabulary needs the padding and unknown-word entries and max_len ≥ 1".into(),
            );
        }
        Ok(Tokenizer::from_vocabulary(p.vocabulary, p.max_len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tokenizer_read_back_encodes_the_same() {
        let t = Tokenizer::fit(&["the cat sat", "the dog ran", "a cat"], 6, 4);
        let json = serde_json::to_string(&t).unwrap();
        let back: Tokenizer = serde_json::from_str(&json).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.encode("the cat ran far"), t.encode("the cat ran far"));
        assert!(serde_json::from_str::<Tokenizer>(&json.replace(WORDS, "bytes")).is_err());
    }
}
