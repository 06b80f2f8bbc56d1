//! A byte trie for greedy longest-match tokenization (the World tokenizer).
//!
//! Why this layout: the nodes are renumbered breadth-first, so the children of node `n` are the
//! consecutive nodes `first_child[n] .. first_child[n + 1]`, sorted by byte. A node then costs
//! 9 bytes (token, first child, label) and finding a child is a binary search over at most 256
//! labels; the 65k-token World vocabulary fits in a few MB and matches in O(token length).

const NO_TOKEN: u32 = u32::MAX;

#[derive(Clone)]
pub struct Trie {
    token: Vec<u32>,
    /// One entry per node plus a sentinel, so `first_child[n + 1]` always exists.
    first_child: Vec<u32>,
    /// The byte on the edge into each node (unused for the root).
    label: Vec<u8>,
}

/// The trie while it is built: per node, its token and children sorted by byte.
#[derive(Default)]
struct Building {
    token: Vec<u32>,
    children: Vec<Vec<(u8, u32)>>,
}

impl Building {
    fn add_node(&mut self) -> u32 {
        self.token.push(NO_TOKEN);
        self.children.push(Vec::new());
        (self.token.len() - 1) as u32
    }

    /// Returns false if `bytes` already had a token.
    fn insert(&mut self, bytes: &[u8], id: u32) -> bool {
        let mut node = 0u32;
        for &b in bytes {
            node = match self.children[node as usize].binary_search_by_key(&b, |&(l, _)| l) {
                Ok(k) => self.children[node as usize][k].1,
                Err(k) => {
                    let child = self.add_node();
                    self.children[node as usize].insert(k, (b, child));
                    child
                }
            };
        }
        let slot = &mut self.token[node as usize];
        let fresh = *slot == NO_TOKEN;
        *slot = id;
        fresh
    }
}

impl Trie {
    /// Builds from (bytes, id) pairs. Err(bytes) names the first token that appears twice.
    pub fn build<'a>(tokens: impl IntoIterator<Item = (&'a [u8], u32)>) -> Result<Trie, &'a [u8]> {
        let mut b = Building::default();
        b.add_node();
        for (bytes, id) in tokens {
            if !b.insert(bytes, id) {
                return Err(bytes);
            }
        }
        // Breadth-first renumbering: `order[new] = old`; children are appended in byte order.
        let n = b.token.len();
        let mut order = Vec::with_capacity(n);
        let mut first_child = Vec::with_capacity(n + 1);
        let mut label = Vec::with_capacity(n);
        order.push(0u32);
        label.push(0u8);
        let mut head = 0;
        while head < order.len() {
            first_child.push(order.len() as u32);
            for &(byte, child) in &b.children[order[head] as usize] {
                order.push(child);
                label.push(byte);
            }
            head += 1;
        }
        first_child.push(order.len() as u32);
        let token = order.iter().map(|&old| b.token[old as usize]).collect();
        Ok(Trie { token, first_child, label })
    }

    fn child(&self, node: usize, byte: u8) -> Option<usize> {
        let lo = self.first_child[node] as usize;
        let hi = self.first_child[node + 1] as usize;
        self.label[lo..hi].binary_search(&byte).ok().map(|k| lo + k)
    }

    /// The longest token that is a prefix of `text`: (id, length in bytes).
    pub fn longest_prefix(&self, text: &[u8]) -> Option<(u32, usize)> {
        let mut node = 0;
        let mut best = None;
        for (depth, &byte) in text.iter().enumerate() {
            match self.child(node, byte) {
                Some(next) => node = next,
                None => break,
            }
            if self.token[node] != NO_TOKEN {
                best = Some((self.token[node], depth + 1));
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_longest_prefix() {
        let words: &[(&[u8], u32)] = &[(b"a", 1), (b"ab", 2), (b"abcd", 3), (b"b", 4), (b"\xff", 5)];
        let t = Trie::build(words.iter().copied()).unwrap();
        assert_eq!(t.longest_prefix(b"abcde"), Some((3, 4)));
        assert_eq!(t.longest_prefix(b"abc"), Some((2, 2)));
        assert_eq!(t.longest_prefix(b"a"), Some((1, 1)));
        assert_eq!(t.longest_prefix(b"\xffa"), Some((5, 1)));
        assert_eq!(t.longest_prefix(b"c"), None);
        assert_eq!(t.longest_prefix(b""), None);
        assert_eq!(Trie::build([(&b"x"[..], 1), (&b"x"[..], 2)]).err(), Some(&b"x"[..]));
    }
}
