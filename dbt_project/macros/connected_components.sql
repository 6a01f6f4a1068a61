{#- Connected components of an undirected graph, as a recursive CTE (portable SQL).

    `nodes`: a relation with `node_id` and `node_rank` (an integer, unique per node).
    `links`: a relation with `node_id` and `linked_node_id` (one row per link; both directions
    are taken). Yields one row per node: `node_id` and `component_rank`, the smallest
    `node_rank` in its component. Work grows with the square of a component's size, so
    the caller keeps components small (identity guardrails cap how many records one
    identifier may join). -#}
{% macro connected_components(nodes, links) -%}
    with recursive

    undirected_links as (

        select node_id, linked_node_id from {{ links }}
        union
        select linked_node_id as node_id, node_id as linked_node_id from {{ links }}

    ),

    reachable (node_id, reached_node_id) as (

        select node_id, node_id as reached_node_id from {{ nodes }}
        union
        select
            reachable.node_id,
            undirected_links.linked_node_id as reached_node_id

        from reachable
        inner join undirected_links
            on reachable.reached_node_id = undirected_links.node_id

    ),

    components as (

        select
            reachable.node_id,
            min(reached_nodes.node_rank) as component_rank

        from reachable
        inner join {{ nodes }} as reached_nodes
            on reachable.reached_node_id = reached_nodes.node_id
        group by reachable.node_id

    )

    select * from components
{%- endmacro %}
