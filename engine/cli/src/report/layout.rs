//! A layered drawing of the DAG (Sugiyama, Tagawa and Toda, 1981): each
//! stage in the column of its longest distance from a source, an invisible
//! "dummy" item in every column an edge skips, then the items of each column
//! reordered by the barycentre of their neighbours, sweeping down and up,
//! keeping the order with the fewest crossings. An edge is then drawn
//! through its dummies, each of which has a row of its own, so no edge ever
//! passes under a box.

/// Columns, their items in order, and each edge's route through them.
/// Items `0..stages` are the stages; the rest are dummies.
pub struct Layout {
    pub stages: usize,
    /// The column of each item.
    pub column: Vec<usize>,
    /// The items of each column, top to bottom.
    pub columns: Vec<Vec<usize>>,
    /// Per edge, in the order given: the items from its source to its
    /// target, one per column.
    pub routes: Vec<Vec<usize>>,
}

/// Sweeps of crossing reduction at most (a down and an up sweep each).
const ROUNDS: usize = 12;

impl Layout {
    /// Lays out `stages` stages in topological `order` joined by `edges`
    /// (upstream, downstream).
    pub fn new(stages: usize, order: &[usize], edges: &[(usize, usize)]) -> Layout {
        let mut downstream = vec![Vec::new(); stages];
        for &(a, b) in edges {
            downstream[a].push(b);
        }
        let mut column = vec![0usize; stages];
        for &i in order {
            for &b in &downstream[i] {
                column[b] = column[b].max(column[i] + 1);
            }
        }
        // Dummies, and the neighbours of every item in the next and the
        // previous column.
        let mut routes = Vec::with_capacity(edges.len());
        for &(a, b) in edges {
            let mut route = vec![a];
            for c in column[a] + 1..column[b] {
                route.push(column.len());
                column.push(c);
            }
            route.push(b);
            routes.push(route);
        }
        let items = column.len();
        let (mut down, mut up) = (vec![Vec::new(); items], vec![Vec::new(); items]);
        for route in &routes {
            for pair in route.windows(2) {
                down[pair[0]].push(pair[1]);
                up[pair[1]].push(pair[0]);
            }
        }
        let count = column.iter().copied().max().map_or(0, |m| m + 1);
        let mut columns: Vec<Vec<usize>> = vec![Vec::new(); count];
        for &i in order {
            columns[column[i]].push(i);
        }
        for (i, &c) in column.iter().enumerate().skip(stages) {
            columns[c].push(i);
        }

        let mut position = vec![0usize; items];
        let place = |columns: &[Vec<usize>], position: &mut Vec<usize>| {
            for col in columns {
                for (p, &i) in col.iter().enumerate() {
                    position[i] = p;
                }
            }
        };
        place(&columns, &mut position);
        let mut best = (crossings(&columns, &down, &position), columns.clone());
        let mut stale_rounds = 0;
        for _ in 0..ROUNDS {
            if best.0 == 0 {
                break;
            }
            for column in columns.iter_mut().skip(1) {
                reorder(column, &up, &mut position);
            }
            for column in columns.iter_mut().rev().skip(1) {
                reorder(column, &down, &mut position);
            }
            let now = crossings(&columns, &down, &position);
            if now < best.0 {
                best = (now, columns.clone());
                stale_rounds = 0;
            } else {
                stale_rounds += 1;
                if stale_rounds == 2 {
                    break;
                }
            }
        }
        Layout { stages, column, columns: best.1, routes }
    }

    pub fn is_stage(&self, item: usize) -> bool {
        item < self.stages
    }
}

/// Orders `items` by the mean position of their neighbours in the fixed
/// adjacent column; an item with none keeps its place.
fn reorder(items: &mut [usize], neighbours: &[Vec<usize>], position: &mut [usize]) {
    let mut keyed: Vec<(f64, usize, usize)> = items
        .iter()
        .map(|&i| {
            let n = &neighbours[i];
            let key = if n.is_empty() {
                position[i] as f64
            } else {
                n.iter().map(|&j| position[j] as f64).sum::<f64>() / n.len() as f64
            };
            (key, position[i], i)
        })
        .collect();
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    for (p, (_, _, i)) in keyed.into_iter().enumerate() {
        items[p] = i;
        position[i] = p;
    }
}

/// The number of pairs of edge segments that cross between neighbouring
/// columns: per pair of columns, the inversions among the segments' lower
/// ends once sorted by their upper ends (Barth, Jünger and Mutzel's count,
/// with a Fenwick tree).
fn crossings(columns: &[Vec<usize>], down: &[Vec<usize>], position: &[usize]) -> usize {
    let mut total = 0;
    for pair in columns.windows(2) {
        let mut segments: Vec<(usize, usize)> =
            pair[0].iter().flat_map(|&u| down[u].iter().map(move |&v| (position[u], position[v]))).collect();
        segments.sort_unstable();
        let mut tree = vec![0usize; pair[1].len() + 1];
        for (seen, &(_, v)) in segments.iter().enumerate() {
            // Segments seen so far that end below `v` cross this one.
            let mut at_most = 0;
            let mut k = v + 1;
            while k > 0 {
                at_most += tree[k];
                k -= k & k.wrapping_neg();
            }
            total += seen - at_most;
            let mut k = v + 1;
            while k < tree.len() {
                tree[k] += 1;
                k += k & k.wrapping_neg();
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Crossings counted pair by pair, to check the Fenwick count.
    fn naive(columns: &[Vec<usize>], down: &[Vec<usize>], position: &[usize]) -> usize {
        let mut total = 0;
        for pair in columns.windows(2) {
            let segments: Vec<(usize, usize)> =
                pair[0].iter().flat_map(|&u| down[u].iter().map(move |&v| (position[u], position[v]))).collect();
            for (i, a) in segments.iter().enumerate() {
                for b in &segments[i + 1..] {
                    if (a.0 < b.0 && a.1 > b.1) || (a.0 > b.0 && a.1 < b.1) {
                        total += 1;
                    }
                }
            }
        }
        total
    }

    #[test]
    fn crossings_are_counted_exactly() {
        // Column 0: items 0, 1, 2; column 1: items 3, 4, 5.
        let columns = vec![vec![0, 1, 2], vec![3, 4, 5]];
        let position = [0, 1, 2, 0, 1, 2];
        for down in [
            vec![vec![5], vec![4], vec![3], vec![], vec![], vec![]],
            vec![vec![3, 4, 5], vec![3], vec![3, 5], vec![], vec![], vec![]],
            vec![vec![4], vec![3, 5], vec![4], vec![], vec![], vec![]],
        ] {
            assert_eq!(crossings(&columns, &down, &position), naive(&columns, &down, &position), "{down:?}");
        }
        let reversed = vec![vec![5], vec![4], vec![3], vec![], vec![], vec![]];
        assert_eq!(crossings(&columns, &reversed, &position), 3);
    }

    #[test]
    fn an_edge_that_skips_columns_gets_a_dummy_in_each() {
        // a → b → c → d, and a → d.
        let layout = Layout::new(4, &[0, 1, 2, 3], &[(0, 1), (1, 2), (2, 3), (0, 3)]);
        assert_eq!(layout.column[..4], [0, 1, 2, 3]);
        assert_eq!(layout.routes[3].len(), 4, "a, two dummies, d");
        assert_eq!(layout.routes[3][1..3].iter().map(|&i| layout.column[i]).collect::<Vec<_>>(), [1, 2]);
        assert!(!layout.is_stage(layout.routes[3][1]));
        assert_eq!(layout.columns.iter().map(Vec::len).collect::<Vec<_>>(), [1, 2, 2, 1]);
    }

    #[test]
    fn crossings_are_undone_where_they_can_be() {
        // Two chains listed crosswise, a → x and b → y, plus a → c → y:
        // drawn with no crossing.
        let (a, b, c, x, y) = (0, 1, 2, 3, 4);
        let layout = Layout::new(5, &[a, b, c, x, y], &[(a, y), (b, x), (a, c), (c, y)]);
        let mut position = vec![0; layout.column.len()];
        let mut down = vec![Vec::new(); layout.column.len()];
        for route in &layout.routes {
            for pair in route.windows(2) {
                down[pair[0]].push(pair[1]);
            }
        }
        for col in &layout.columns {
            for (p, &i) in col.iter().enumerate() {
                position[i] = p;
            }
        }
        assert_eq!(naive(&layout.columns, &down, &position), 0, "{:?}", layout.columns);
    }
}
