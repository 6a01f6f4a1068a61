-- RFMT per customer as of the run's date: recency, frequency, monetary, tenure, their 1..5
-- scores (quintiles, ties share a score), the weighted rfmt_score and the named RFM segment.
-- customer_segments looks up the lifecycle stage once per distinct recency, which PostgreSQL
-- plans only with this table's statistics (without, once per customer): every table model is
-- analyzed once built (macros/analyze_built_table.sql).

with

customer_totals as (

    select * from {{ ref('int_customers__transaction_totals') }}

),

rfm_segments as (

    select * from {{ ref('rfm_segments') }}

),

customer_measures as (

    select
        customer_key,
        first_purchase_at,
        last_purchase_at,
        recency_days,
        purchase_days - 1 as frequency,
        monetary_total,
        cast(monetary_total / purchase_days as numeric(14, 2)) as monetary_average,
        tenure_days

    from customer_totals

),

{%- set measures = [
    {'name': 'r', 'column': 'recency_days', 'descending': true},
    {'name': 'f', 'column': 'frequency', 'descending': false},
    {'name': 'm', 'column': 'monetary_total', 'descending': false},
    {'name': 't', 'column': 'tenure_days', 'descending': false},
] %}

-- per measure, the first value reaching each score (macro score_by_rank_bounds: one row)
{% for measure in measures %}
{{ measure.name }}_score_bounds as (

    {{ score_by_rank_bounds('customer_measures', measure.column, measure.name,
                            measure.descending) }}

),

{% endfor %}
-- materialized: computed once per customer, not again in every expression that uses a score
customer_scores as materialized (

    select
        customer_measures.*,
        {%- for measure in measures %}
        {{ score_by_rank('customer_measures.' ~ measure.column, measure.name ~ '_score_bounds',
                         measure.name, measure.descending) }} as {{ measure.name }}_score
        {{- ',' if not loop.last }}
        {%- endfor %}

    from customer_measures
    {%- for measure in measures %}
    cross join {{ measure.name }}_score_bounds
    {%- endfor %}

),

{%- set weights = var('rfmt_weights') %}

customer_composites as (

    select
        customer_scores.*,
        cast((f_score + m_score) / 2.0 as numeric(3, 1)) as fm_score,
        cast(
            cast({{ weights.recency }} * r_score + {{ weights.frequency }} * f_score
                + {{ weights.monetary }} * m_score + {{ weights.tenure }} * t_score as numeric)
            -- the sum in SQL: exact decimal arithmetic, not Jinja's floats
            / ({{ weights.recency }} + {{ weights.frequency }} + {{ weights.monetary }}
                + {{ weights.tenure }})
            as numeric(6, 4)
        ) as rfmt_score

    from customer_scores

),

-- the segment of each (r_score, fm_score) pair a customer can have (r_score 1 to 5, fm_score
-- 1.0 to 5.0 by halves: 45 pairs): the first match by priority
score_pairs as (

    select
        r_scores.r_score,
        cast(fm_halves.fm_half_points / 2.0 as numeric(3, 1)) as fm_score

    from generate_series(1, 5) as r_scores (r_score)
    cross join generate_series(2, 10) as fm_halves (fm_half_points)

),

segment_matches as (

    select
        score_pairs.r_score,
        score_pairs.fm_score,
        rfm_segments.rfm_segment,
        row_number() over (
            partition by score_pairs.r_score, score_pairs.fm_score
            order by rfm_segments.priority
        ) as match_rank

    from score_pairs
    inner join rfm_segments
        on score_pairs.r_score between rfm_segments.min_r_score and rfm_segments.max_r_score
        and score_pairs.fm_score between rfm_segments.min_fm_score and rfm_segments.max_fm_score

),

final as (

    select
        cast(customer_composites.customer_key as varchar) as customer_key,
        {{ local_date(as_of_at()) }} as as_of_date,
        customer_composites.first_purchase_at,
        customer_composites.last_purchase_at,
        cast(customer_composites.recency_days as integer) as recency_days,
        cast(customer_composites.frequency as integer) as frequency,
        cast(customer_composites.monetary_total as numeric(14, 2)) as monetary_total,
        customer_composites.monetary_average,
        cast(customer_composites.tenure_days as integer) as tenure_days,
        customer_composites.r_score,
        customer_composites.f_score,
        customer_composites.m_score,
        customer_composites.t_score,
        customer_composites.fm_score,
        customer_composites.rfmt_score,
        cast(segment_matches.rfm_segment as varchar) as rfm_segment

    from customer_composites
    left join segment_matches
        on customer_composites.r_score = segment_matches.r_score
        and customer_composites.fm_score = segment_matches.fm_score
        and segment_matches.match_rank = 1

)

select * from final
